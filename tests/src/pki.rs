//! Real TLS for the end-to-end tests: a throw-away CA made in the test, the
//! certificates it signs, and clients (ureq, raw rustls) that trust it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A certificate authority that lives for one test.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub pem: String,
    /// The CA certificate written to a file (for `ca_file`, `tls_client_ca` …).
    pub file: PathBuf,
    _dir: tempfile::TempDir,
}

/// A certificate and its key, PEM, and where they were written.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl Leaf {
    /// The certificate, DER (to compare with what a server presented).
    pub fn der(&self) -> Vec<u8> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .expect("leaf PEM")
            .to_vec()
    }
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, cert.pem()).unwrap();
        TestCa {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
            file,
            _dir: dir,
        }
    }

    /// A server certificate for loopback (`localhost`, `127.0.0.1`),
    /// written as `<dir>/<stem>.crt` and `.key`.
    pub fn server(&self, dir: &Path, stem: &str) -> Leaf {
        self.sign(
            dir,
            stem,
            "localhost",
            vec![
                SanType::DnsName("localhost".try_into().unwrap()),
                SanType::IpAddress([127, 0, 0, 1].into()),
            ],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate with common name `cn` and, if given, a URI SAN
    /// (a SPIFFE id, as a mesh issues).
    pub fn client(&self, dir: &Path, stem: &str, cn: &str, uri: Option<&str>) -> Leaf {
        let sans = uri
            .map(|u| vec![SanType::URI(u.try_into().unwrap())])
            .unwrap_or_default();
        self.sign(dir, stem, cn, sans, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn sign(
        &self,
        dir: &Path,
        stem: &str,
        cn: &str,
        sans: Vec<SanType>,
        usage: ExtendedKeyUsagePurpose,
    ) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let leaf = Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_file: dir.join(format!("{stem}.crt")),
            key_file: dir.join(format!("{stem}.key")),
        };
        replace_file(&leaf.cert_file, leaf.cert_pem.as_bytes());
        replace_file(&leaf.key_file, leaf.key_pem.as_bytes());
        leaf
    }
}

/// Write `path` as a rotation does: a new file renamed over the old one.
pub fn replace_file(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A ureq agent that trusts `ca_pem` only, presenting `client` if given.
pub fn agent(ca_pem: &str, client: Option<&Leaf>) -> ureq::Agent {
    use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig, TlsProvider};
    let ca = Certificate::from_pem(ca_pem.as_bytes()).unwrap();
    let client = client.map(|l| {
        ClientCert::new_with_certs(
            &[Certificate::from_pem(l.cert_pem.as_bytes()).unwrap()],
            PrivateKey::from_pem(l.key_pem.as_bytes()).unwrap(),
        )
    });
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .root_certs(RootCerts::new_with_certs(&[ca]))
        .client_cert(client)
        .build();
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .tls_config(tls)
        .build()
        .into()
}

/// rustls client config trusting `ca_pem`.
fn client_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// rustls server config for a certificate and key (PEM).
pub fn server_config(leaf: &Leaf) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    )
}

/// One keep-alive HTTPS connection, driven by hand, that can tell which
/// certificate the server presented on it.
pub struct Connection {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl Connection {
    /// Connect to `base` (`https://host:port`) and finish the handshake.
    pub fn open(base: &str, ca_pem: &str) -> Result<Connection, String> {
        let addr = base.trim_start_matches("https://").trim_end_matches('/');
        let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(client_config(ca_pem), name)
            .map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| e.to_string())?;
        }
        Ok(Connection { tls })
    }

    /// The end-entity certificate the server presented (DER).
    pub fn server_cert(&self) -> Vec<u8> {
        self.tls.conn.peer_certificates().expect("handshake done")[0].to_vec()
    }

    /// `GET path` on this connection (kept alive); the status and body.
    pub fn get(&mut self, path: &str) -> Result<(u16, String), String> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        self.tls
            .write_all(req.as_bytes())
            .map_err(|e| e.to_string())?;
        self.tls.flush().map_err(|e| e.to_string())?;
        // The head, byte by byte (small answers), then Content-Length bytes.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match self.tls.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                Ok(_) => return Err("connection closed before an answer".into()),
                Err(e) => return Err(e.to_string()),
            }
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status in {head:?}"))?;
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .ok_or_else(|| format!("no content-length in {head:?}"))?;
        let mut body = vec![0u8; length];
        self.tls.read_exact(&mut body).map_err(|e| e.to_string())?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}
