//! TLS for both directions, with rustls and the `ring` provider.
//!
//! - **Server** ([`ServerTls`]): the certificate and key are PEM files,
//!   re-read when they change (cert-manager and Kubernetes secret volumes
//!   replace them in place), so a rotation needs no restart and drops no
//!   connection: each new handshake looks at the files' metadata (two
//!   `stat`s, far below the cost of a handshake) and reloads on a change;
//!   established connections keep the session they negotiated. A change
//!   that does not load (a key written before its certificate, a half-written
//!   file) keeps the previous pair and is logged once per change. TLS 1.2
//!   and 1.3 only, ALPN `http/1.1` (the listener serves HTTP/1.1).
//! - **Client certificates** (optional, `tls_client_ca`): a certificate
//!   signed by that CA is accepted and its names (subject CN, DNS and URI
//!   SANs) are handed to the request, where `[[client_certs]]` maps them to
//!   a name and roles like a token (see `http::auth`). A client without a
//!   certificate may still present a token; a certificate from another CA
//!   fails the handshake.
//! - **Clients** ([`ClientTls`]): metric sources, OTLP export and the CLI
//!   trust the system's CA certificates (the OS store, through
//!   `rustls-native-certs`: a private CA installed with
//!   `update-ca-certificates` counts, and the roots follow OS updates
//!   without a rebuild), a given PEM bundle, or both. [`explain`] turns a
//!   certificate failure into a sentence that names the host and the reason.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("`{path}` holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: PathBuf },
    #[error("the key `{key}` does not go with the certificate `{cert}`: {source}")]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("client CA `{path}`: {message}")]
    ClientCa { path: PathBuf, message: String },
    #[error("TLS set-up: {0}")]
    Rustls(#[from] rustls::Error),
    #[error(
        "no CA certificate to trust: the system store is empty or unreadable ({0}); \
         install the `ca-certificates` package or set a CA file"
    )]
    NoSystemRoots(String),
}

/// The one crypto provider, for servers and clients alike.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate in a PEM file (a chain, or a CA bundle).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The certificate chain in `cert` and the key in `key`, checked to match.
fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = read_certificates(cert)?;
    let key_pem = read(key)?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoKey {
        path: key.to_path_buf(),
    })?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|source| TlsError::KeyMismatch {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        source,
    })
}

/// What the server's TLS is configured from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Ask clients for a certificate signed by this CA (optional for them).
    pub client_ca: Option<PathBuf>,
}

/// The server side: a rustls config whose certificate follows its files.
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
}

impl ServerTls {
    /// Load the pair (and the client CA); any problem is a start-up error.
    pub fn load(files: &ServerFiles) -> Result<ServerTls, TlsError> {
        let resolver = Arc::new(ReloadingCert::load(&files.cert, &files.key)?);
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
        let builder = match &files.client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let ca_error = |message: String| TlsError::ClientCa {
                    path: path.clone(),
                    message,
                };
                let mut roots = RootCertStore::empty();
                for cert in read_certificates(path)? {
                    roots
                        .add(cert)
                        .map_err(|e| ca_error(format!("not a usable CA certificate: {e}")))?;
                }
                // Optional at the TLS layer: clients with a token and no
                // certificate (Argo, the CLI) share the listener. A
                // certificate that is presented must verify.
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .allow_unauthenticated()
                        .build()
                        .map_err(|e| ca_error(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(resolver);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls {
            config: Arc::new(config),
        })
    }
}

/// When a file was last changed, as far as reloading is concerned: the
/// modification time, the size and the inode (a secret volume swaps a
/// symlink to a new file, which may keep the mtime of the old one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode: m.ino(),
    })
}

/// The certificate and key in use, and the file stamps they were read at.
struct Current {
    stamps: (Option<Stamp>, Option<Stamp>),
    key: Arc<CertifiedKey>,
    /// Stamps whose files did not load (logged once, not on every handshake).
    failed: Option<(Option<Stamp>, Option<Stamp>)>,
}

/// Serves the pair read last, re-reading the files when their stamps change.
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<Current>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ReloadingCert {
    pub fn load(cert: &Path, key: &Path) -> Result<ReloadingCert, TlsError> {
        let stamps = (stamp(cert), stamp(key));
        let pair = load_pair(cert, key)?;
        Ok(ReloadingCert {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: Mutex::new(Current {
                stamps,
                key: Arc::new(pair),
                failed: None,
            }),
        })
    }

    /// The pair to present now, reloaded first if the files changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let stamps = (stamp(&self.cert), stamp(&self.key));
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if stamps == current.stamps || current.failed == Some(stamps) {
            return current.key.clone();
        }
        match load_pair(&self.cert, &self.key) {
            Ok(pair) => {
                tracing::info!(
                    cert = %self.cert.display(),
                    "reloaded the TLS certificate (new connections use it)"
                );
                current.key = Arc::new(pair);
                current.stamps = stamps;
                current.failed = None;
            }
            Err(e) => {
                // Often transient (the key written after the certificate):
                // the next handshake looks again.
                tracing::warn!(
                    "TLS certificate changed but does not load, keeping the previous one: {e}"
                );
                current.failed = Some(stamps);
            }
        }
        current.key.clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The names a verified client certificate carries, matched against
/// `[[client_certs]]` subjects: the subject's common names, DNS names and
/// URIs (a SPIFFE id, as service meshes issue) from the SAN extension.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerNames(pub Vec<String>);

impl PeerNames {
    /// Names of the end-entity certificate (`der`); none if it does not
    /// parse (the verifier already accepted it, so that is not expected).
    pub fn of(der: &[u8]) -> PeerNames {
        use x509_parser::extensions::GeneralName;
        use x509_parser::prelude::FromDer;
        let Ok((_, cert)) = x509_parser::certificate::X509Certificate::from_der(der) else {
            return PeerNames::default();
        };
        let mut names: Vec<String> = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_string))
            .collect();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(s) | GeneralName::URI(s) => names.push(s.to_string()),
                    _ => {}
                }
            }
        }
        PeerNames(names)
    }
}

/// Which CAs a client trusts (`tls = { … }` on a metric source).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// A PEM bundle of CA certificates to trust.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Trust the system's CA certificates too. Default: yes without
    /// `ca_file`, no with it (a private CA is then the only one trusted).
    #[serde(default)]
    pub system_roots: Option<bool>,
}

impl ClientTls {
    fn system(&self) -> bool {
        self.system_roots.unwrap_or(self.ca_file.is_none())
    }

    /// The trusted roots as ureq takes them, for a client of `url`; errors
    /// name the file. An empty system store is an error only for an
    /// `https://` URL: a plain-http client (in a minimal image without CA
    /// certificates) must not fail for want of roots it never uses.
    pub fn ureq_config(&self, url: &str) -> Result<ureq::tls::TlsConfig, TlsError> {
        let mut roots: Vec<ureq::tls::Certificate<'static>> = Vec::new();
        if self.system() {
            match system_roots() {
                Ok(system) => roots.extend(
                    system
                        .iter()
                        .map(|c| ureq::tls::Certificate::from_der(c).to_owned()),
                ),
                Err(e) if is_https(url) => return Err(e),
                Err(_) => {}
            }
        }
        if let Some(path) = &self.ca_file {
            roots.extend(
                read_certificates(path)?
                    .iter()
                    .map(|c| ureq::tls::Certificate::from_der(c).to_owned()),
            );
        }
        Ok(ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(provider())
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots)))
            .build())
    }
}

/// The OS's CA certificates (DER), read once per process. An empty store
/// is an error: every https call would fail, better said at start-up.
fn system_roots() -> Result<&'static [Vec<u8>], TlsError> {
    static ROOTS: OnceLock<Result<Vec<Vec<u8>>, String>> = OnceLock::new();
    let roots = ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        if found.certs.is_empty() {
            let why = found
                .errors
                .first()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "no certificates found".into());
            return Err(why);
        }
        Ok(found.certs.into_iter().map(|c| c.to_vec()).collect())
    });
    match roots {
        Ok(r) => Ok(r),
        Err(why) => Err(TlsError::NoSystemRoots(why.clone())),
    }
}

/// A transport error of a call to `url` in words; a TLS failure says which
/// host refused and why, and what to configure.
pub fn explain(url: &str, e: &ureq::Error) -> String {
    let rustls_error = match e {
        ureq::Error::Rustls(r) => Some(r),
        ureq::Error::Io(io) => io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    let Some(r) = rustls_error else {
        return e.to_string();
    };
    let host = host_of(url);
    let why = match r {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "its certificate is not signed by a trusted CA (unknown issuer): \
                 trust the CA that signed it (`ca_file`)"
                    .to_string()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("its certificate is not valid for the name `{host}`: {c}")
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("its certificate has expired: {c}")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("its certificate is not valid yet: {c}")
            }
            other => format!("its certificate is refused: {other}"),
        },
        other => other.to_string(),
    };
    format!("TLS with `{host}` failed: {why}")
}

fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// `host:port` of a URL, for messages.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.rsplit('@').next().unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    /// A self-signed certificate for `cn` (with the extra SANs) and its key, as PEM.
    fn pair(cn: &str, sans: Vec<SanType>) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = sans;
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn der_of(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn a_changed_pair_is_served_and_a_broken_change_keeps_the_last_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let (a_cert, a_key) = pair("a", vec![]);
        std::fs::write(&cert, &a_cert).unwrap();
        std::fs::write(&key, &a_key).unwrap();
        let r = ReloadingCert::load(&cert, &key).unwrap();
        assert_eq!(r.current().cert[0].as_ref(), der_of(&a_cert));

        // Rotated (new files, as a secret volume swaps them in).
        let (b_cert, b_key) = pair("b", vec![]);
        std::fs::write(dir.path().join("new.crt"), &b_cert).unwrap();
        std::fs::write(dir.path().join("new.key"), &b_key).unwrap();
        std::fs::rename(dir.path().join("new.crt"), &cert).unwrap();
        std::fs::rename(dir.path().join("new.key"), &key).unwrap();
        assert_eq!(r.current().cert[0].as_ref(), der_of(&b_cert), "reloaded");

        // Half a rotation: a new certificate, the old key. Kept: b.
        let (c_cert, c_key) = pair("c", vec![]);
        std::fs::write(dir.path().join("new.crt"), &c_cert).unwrap();
        std::fs::rename(dir.path().join("new.crt"), &cert).unwrap();
        assert_eq!(
            r.current().cert[0].as_ref(),
            der_of(&b_cert),
            "mismatch kept b"
        );
        assert!(load_pair(&cert, &key)
            .unwrap_err()
            .to_string()
            .contains("does not go with"));
        // The key follows: now c.
        std::fs::write(dir.path().join("new.key"), &c_key).unwrap();
        std::fs::rename(dir.path().join("new.key"), &key).unwrap();
        assert_eq!(
            r.current().cert[0].as_ref(),
            der_of(&c_cert),
            "completed rotation"
        );

        // A truncated write is not served either.
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\n").unwrap();
        assert_eq!(r.current().cert[0].as_ref(), der_of(&c_cert));
    }

    #[test]
    fn start_up_errors_name_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let (a_cert, _) = pair("a", vec![]);
        std::fs::write(&cert, &a_cert).unwrap();
        std::fs::write(&key, "no key here").unwrap();
        let files = ServerFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: None,
        };
        let err = ServerTls::load(&files).err().unwrap().to_string();
        assert!(
            err.contains("tls.key") && err.contains("no PEM private key"),
            "{err}"
        );
        let files = ServerFiles {
            key: dir.path().join("missing.key"),
            ..files
        };
        let err = ServerTls::load(&files).err().unwrap().to_string();
        assert!(
            err.contains("cannot read") && err.contains("missing.key"),
            "{err}"
        );
    }

    #[test]
    fn peer_names_are_the_common_name_dns_names_and_uris() {
        let (cert, _) = pair(
            "rollouts",
            vec![
                SanType::DnsName("rollouts.argo.svc".try_into().unwrap()),
                SanType::URI(
                    "spiffe://cluster.local/ns/argo/sa/rollouts"
                        .try_into()
                        .unwrap(),
                ),
                SanType::IpAddress([10, 0, 0, 1].into()),
            ],
        );
        assert_eq!(
            PeerNames::of(&der_of(&cert)).0,
            [
                "rollouts",
                "rollouts.argo.svc",
                "spiffe://cluster.local/ns/argo/sa/rollouts"
            ]
        );
        assert_eq!(PeerNames::of(b"not der"), PeerNames::default());
    }

    #[test]
    fn host_of_urls() {
        assert_eq!(
            host_of("https://prom.example:9090/api/v1/query?x=1"),
            "prom.example:9090"
        );
        assert_eq!(host_of("https://u:p@h/x"), "h");
        assert_eq!(host_of("h:1"), "h:1");
    }

    #[test]
    fn system_roots_by_default_only_the_bundle_with_one() {
        assert!(ClientTls::default().system());
        let bundle = ClientTls {
            ca_file: Some("ca.pem".into()),
            system_roots: None,
        };
        assert!(!bundle.system());
        let both = ClientTls {
            system_roots: Some(true),
            ..bundle
        };
        assert!(both.system());
    }

    #[test]
    fn missing_or_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem").unwrap();
        let err = read_certificates(&empty).unwrap_err().to_string();
        assert!(
            err.contains("empty.pem") && err.contains("no PEM certificate"),
            "{err}"
        );
        let missing = ClientTls {
            ca_file: Some(dir.path().join("nope.pem")),
            system_roots: None,
        };
        let err = missing.ureq_config("https://h").unwrap_err().to_string();
        assert!(err.contains("nope.pem"), "{err}");
    }
}
