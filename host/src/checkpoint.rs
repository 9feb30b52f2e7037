//! Signed checkpoints of the audit chain.
//!
//! The hash chain shows an edit in place, but not a rewrite: whoever can
//! write the store can recompute every hash, drop the newest records and
//! move the head back, or delete a record and re-chain the rest, and the
//! chain verifies again. A checkpoint fixes the chain's state at a moment
//! outside the store: "the log named `origin` had `size` records and its
//! last hash was `hash`", signed with an ed25519 key that is never in the
//! store. Kept somewhere else (a log pipeline, object storage), it lets
//! anyone prove later that the chain still holds exactly that prefix.
//!
//! The text is a C2SP signed note (<https://c2sp.org/signed-note>) whose
//! body is a C2SP `tlog-checkpoint`:
//!
//! ```text
//! verdict.example/prod       ← origin: names this log
//! 1234                       ← tree size: the number of records (the head's seq)
//! q3Bc…base64…=              ← the head record's hash (32 bytes, base64)
//!
//! — verdict.example/prod AbCdEf…base64(key id ‖ signature)…
//! ```
//!
//! The key id is the first 4 bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public
//! key), as signed notes define it; a verifier key is written
//! `name+keyidhex+base64(0x01 ‖ public key)`, the format other signed-note
//! tools read. Verdict's chain is a hash chain, not a Merkle tree, so the
//! "root hash" line is the head record's hash: a checkpoint of size N is
//! proved by the record at seq N having that hash in a chain that
//! verifies.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// The signature algorithm byte signed notes give ed25519.
const ALG_ED25519: u8 = 0x01;
/// A note's signature lines start with this (an em dash and a space).
const SIG_PREFIX: &str = "\u{2014} ";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint key `{path}`: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("not a verifier key (`name+keyid+base64key`): {0}")]
    VerifierKey(String),
    #[error("not a signed checkpoint: {0}")]
    Malformed(String),
    #[error(
        "the checkpoint carries no signature by key `{name}` ({key_id}); it is signed by: {signers}"
    )]
    NoSignature {
        name: String,
        key_id: String,
        signers: String,
    },
    #[error("the signature by `{0}` does not verify: the checkpoint text was changed, or signed by another key")]
    BadSignature(String),
}

/// What a checkpoint states: the log `origin` had `size` records, the last
/// of them with hash `hash` (hex, as records carry it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub hash: String,
}

impl Checkpoint {
    /// The note body (`tlog-checkpoint`): three lines, each ending in `\n`.
    fn body(&self) -> Result<String, CheckpointError> {
        let raw = hex::decode(&self.hash)
            .map_err(|e| CheckpointError::Malformed(format!("hash `{}`: {e}", self.hash)))?;
        Ok(format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(raw)
        ))
    }

    fn parse_body(body: &str) -> Result<Checkpoint, CheckpointError> {
        let bad = |m: &str| CheckpointError::Malformed(m.to_string());
        let mut lines = body.lines();
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad("no origin line"))?;
        let size = lines
            .next()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| bad("the second line must be the tree size, a decimal number"))?;
        let hash = lines
            .next()
            .and_then(|h| B64.decode(h).ok())
            .filter(|h| h.len() == 32)
            .ok_or_else(|| bad("the third line must be a 32-byte hash in base64"))?;
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            hash: hex::encode(hash),
        })
    }
}

/// The signing side: the server's key, named after the log's origin.
pub struct CheckpointSigner {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("name", &self.name)
            .field("verifier", &self.verifier_key())
            .finish_non_exhaustive()
    }
}

fn key_id(name: &str, public: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

impl CheckpointSigner {
    /// The key at `path`, or a new one written there (0600) if the file
    /// does not exist. A file that exists but is not a key is an error,
    /// never replaced: checkpoints already kept elsewhere were signed with
    /// it, and a silent new key would make them unverifiable.
    pub fn load_or_create(path: &Path, origin: &str) -> Result<CheckpointSigner, CheckpointError> {
        let err = |reason: String| CheckpointError::Key {
            path: path.to_path_buf(),
            reason,
        };
        let seed: [u8; 32] = match std::fs::read(path) {
            Ok(bytes) => {
                let mode = std::fs::metadata(path)
                    .map_err(|e| err(e.to_string()))?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    return Err(err(format!(
                        "readable by others (mode {:o}): `chmod 600` it, and consider it leaked",
                        mode & 0o777
                    )));
                }
                bytes.as_slice().try_into().map_err(|_| {
                    err(format!(
                        "{} bytes, not a 32-byte ed25519 seed: restore the right file",
                        bytes.len()
                    ))
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // First start: the data dir may not exist yet either.
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
                }
                let mut seed = [0u8; 32];
                std::fs::File::open("/dev/urandom")
                    .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut seed))
                    .map_err(|e| err(format!("cannot read random bytes: {e}")))?;
                write_private(path, &seed).map_err(|e| err(e.to_string()))?;
                tracing::info!(path = %path.display(), "generated the checkpoint signing key");
                seed
            }
            Err(e) => return Err(err(e.to_string())),
        };
        Ok(CheckpointSigner::from_seed(origin, seed))
    }

    pub fn from_seed(origin: &str, seed: [u8; 32]) -> CheckpointSigner {
        CheckpointSigner {
            name: origin.to_string(),
            key: SigningKey::from_bytes(&seed),
        }
    }

    pub fn origin(&self) -> &str {
        &self.name
    }

    /// The public key in verifier-key form (`name+keyid+base64`), for
    /// `verdict audit verify --key`.
    pub fn verifier_key(&self) -> String {
        let public = self.key.verifying_key();
        let mut key = vec![ALG_ED25519];
        key.extend_from_slice(public.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(key_id(&self.name, &public)),
            B64.encode(key)
        )
    }

    /// The signed note for a chain of `size` records ending in `hash`.
    pub fn sign(&self, size: u64, hash: &str) -> Result<String, CheckpointError> {
        let body = Checkpoint {
            origin: self.name.clone(),
            size,
            hash: hash.to_string(),
        }
        .body()?;
        let signature = self.key.sign(body.as_bytes());
        let mut sig = key_id(&self.name, &self.key.verifying_key()).to_vec();
        sig.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{body}\n{SIG_PREFIX}{} {}\n",
            self.name,
            B64.encode(sig)
        ))
    }
}

/// The verifying side: a public key in verifier-key form.
#[derive(Debug, Clone)]
pub struct CheckpointVerifier {
    name: String,
    id: [u8; 4],
    key: VerifyingKey,
}

impl std::str::FromStr for CheckpointVerifier {
    type Err = CheckpointError;

    fn from_str(text: &str) -> Result<CheckpointVerifier, CheckpointError> {
        let bad = |m: &str| CheckpointError::VerifierKey(m.to_string());
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected three `+`-separated parts"));
        };
        let id: [u8; 4] = hex::decode(id)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("the key id must be 8 hex digits"))?;
        let key = B64.decode(key).map_err(|_| bad("the key is not base64"))?;
        let Some((&ALG_ED25519, public)) = key.split_first() else {
            return Err(bad("only ed25519 keys (algorithm 0x01) are supported"));
        };
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| bad("an ed25519 public key is 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&public).map_err(|e| bad(&e.to_string()))?;
        if key_id(name, &key) != id {
            return Err(bad("the key id does not match the name and key"));
        }
        Ok(CheckpointVerifier {
            name: name.to_string(),
            id,
            key,
        })
    }
}

impl CheckpointVerifier {
    /// The checkpoint in `note`, if this key signed it.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, CheckpointError> {
        let bad = |m: &str| CheckpointError::Malformed(m.to_string());
        let split = note
            .find("\n\n")
            .ok_or_else(|| bad("no blank line between the text and the signatures"))?;
        let (body, sigs) = (&note[..split + 1], &note[split + 2..]);
        let mut signers = Vec::new();
        for line in sigs.lines().filter(|l| !l.is_empty()) {
            let rest = line
                .strip_prefix(SIG_PREFIX)
                .ok_or_else(|| bad("a signature line must start with an em dash and a space"))?;
            let (name, sig) = rest
                .split_once(' ')
                .ok_or_else(|| bad("a signature line is `— name signature`"))?;
            let sig = B64
                .decode(sig)
                .map_err(|_| bad("a signature is not base64"))?;
            signers.push(name.to_string());
            if name != self.name || sig.len() != 4 + 64 || sig[..4] != self.id {
                continue;
            }
            let signature =
                ed25519_dalek::Signature::from_slice(&sig[4..]).map_err(|e| bad(&e.to_string()))?;
            self.key
                .verify(body.as_bytes(), &signature)
                .map_err(|_| CheckpointError::BadSignature(self.name.clone()))?;
            return Checkpoint::parse_body(body);
        }
        Err(CheckpointError::NoSignature {
            name: self.name.clone(),
            key_id: hex::encode(self.id),
            signers: if signers.is_empty() {
                "nobody".into()
            } else {
                signers.join(", ")
            },
        })
    }
}

/// Write `bytes` to `path` readable by the owner only, whole or not at all
/// (a temporary file renamed into place, synced first).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn signer() -> CheckpointSigner {
        CheckpointSigner::from_seed("verdict.test/prod", [7; 32])
    }

    #[test]
    fn a_signed_checkpoint_verifies_with_the_verifier_key() {
        let s = signer();
        let note = s.sign(42, HASH).unwrap();
        let lines: Vec<&str> = note.lines().collect();
        assert_eq!(lines[0], "verdict.test/prod");
        assert_eq!(lines[1], "42");
        assert_eq!(lines[3], "");
        assert!(
            lines[4].starts_with("\u{2014} verdict.test/prod "),
            "{note}"
        );
        let v: CheckpointVerifier = s.verifier_key().parse().unwrap();
        assert_eq!(
            v.verify(&note).unwrap(),
            Checkpoint {
                origin: "verdict.test/prod".into(),
                size: 42,
                hash: HASH.into()
            }
        );
    }

    #[test]
    fn a_changed_text_or_another_key_does_not_verify() {
        let s = signer();
        let note = s.sign(42, HASH).unwrap();
        let v: CheckpointVerifier = s.verifier_key().parse().unwrap();
        let moved_back = note.replacen("\n42\n", "\n41\n", 1);
        assert!(matches!(
            v.verify(&moved_back),
            Err(CheckpointError::BadSignature(_))
        ));
        let other = CheckpointSigner::from_seed("verdict.test/prod", [8; 32]);
        let forged = other.sign(42, HASH).unwrap();
        assert!(matches!(
            v.verify(&forged),
            Err(CheckpointError::NoSignature { .. })
        ));
        assert!(v.verify("verdict.test/prod\n42\n").is_err());
    }

    #[test]
    fn verifier_keys_are_checked() {
        let key = signer().verifier_key();
        assert!(key.parse::<CheckpointVerifier>().is_ok());
        let renamed = key.replacen("verdict.test/prod", "someone-else", 1);
        assert!(renamed.parse::<CheckpointVerifier>().is_err());
        assert!("nonsense".parse::<CheckpointVerifier>().is_err());
    }

    #[test]
    fn a_key_file_is_created_once_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        // In a data dir that does not exist yet (a first start).
        let path = dir.path().join("data").join("checkpoint.key");
        let a = CheckpointSigner::load_or_create(&path, "o").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = CheckpointSigner::load_or_create(&path, "o").unwrap();
        assert_eq!(a.verifier_key(), b.verifier_key());
        std::fs::write(&path, b"short").unwrap();
        let e = CheckpointSigner::load_or_create(&path, "o").unwrap_err();
        assert!(e.to_string().contains("not a 32-byte"), "{e}");
    }
}
