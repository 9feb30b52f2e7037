//! On-disk cache of precompiled policy artifacts, so a restart deserializes
//! (~100 µs) instead of recompiling (ms to s). Keyed by component digest and
//! the engine's compatibility tag; all access through a cap-std directory
//! capability, so no name can escape the cache directory.
//!
//! Deserializing an artifact maps it as native code, so a swapped or
//! planted file would run as whichever policy's digest names it. Each entry
//! therefore carries an HMAC-SHA256 over the digest, the tag and the
//! artifact, under a secret key generated at first start and kept in the
//! data dir (mode 0600). An entry that does not verify is never
//! deserialized: it is logged and the component recompiled.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use sha2::{Digest, Sha256};

/// Length of the MAC key (the SHA-256 block is 64 bytes; RFC 2104 only asks
/// for at least the output length).
const KEY_LEN: usize = 32;
/// Entry header: magic, then the 32-byte MAC, then the artifact.
const MAGIC: &[u8; 8] = b"VDCTMAC1";
const HEADER_LEN: usize = MAGIC.len() + 32;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot open the artifact cache `{path}`: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read or create the artifact key `{path}`: {source}")]
    Key {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The secret that authenticates cache entries.
#[derive(Clone)]
pub struct CacheKey([u8; KEY_LEN]);

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheKey(…)")
    }
}

impl CacheKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> CacheKey {
        CacheKey(bytes)
    }

    /// Load the key at `path`, or create it (0600) when there is none or
    /// it is unusable (a new key only costs a recompile of every entry).
    pub fn load_or_create(path: &Path) -> Result<CacheKey, CacheError> {
        let err = |source| CacheError::Key {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read(path) {
            Ok(bytes) if bytes.len() == KEY_LEN => {
                let mode = std::fs::metadata(path).map_err(err)?.permissions().mode();
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        path = %path.display(),
                        "artifact key was readable by others ({:o}); restricting it to 0600",
                        mode & 0o777
                    );
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                        .map_err(err)?;
                }
                let mut key = [0; KEY_LEN];
                key.copy_from_slice(&bytes);
                return Ok(CacheKey(key));
            }
            Ok(_) => tracing::warn!(
                path = %path.display(),
                "artifact key has the wrong length; generating a new one (cached policies are recompiled)"
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        let mut key = [0; KEY_LEN];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut key))
            .map_err(err)?;
        // Written whole or not at all, so a crash leaves no half key.
        crate::checkpoint::write_private(path, &key).map_err(err)?;
        Ok(CacheKey(key))
    }

    /// HMAC-SHA256 (RFC 2104) of the concatenation of `parts`.
    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        hmac_sha256(&self.0, parts)
    }
}

/// HMAC-SHA256 per RFC 2104: H((K ⊕ opad) ‖ H((K ⊕ ipad) ‖ m)), with K
/// hashed first when longer than the 64-byte block and zero-padded.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    for p in parts {
        inner.update(p);
    }
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Compare without an early exit, so timing does not tell how much of a
/// forged MAC was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub struct ArtifactCache {
    dir: Dir,
    key: CacheKey,
}

impl ArtifactCache {
    /// Open (creating if needed) the cache directory at `path`; entries
    /// are authenticated with `key`.
    pub fn open(path: &Path, key: CacheKey) -> Result<ArtifactCache, CacheError> {
        let err = |source| CacheError::Open {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(path).map_err(err)?;
        let dir = Dir::open_ambient_dir(path, ambient_authority()).map_err(err)?;
        Ok(ArtifactCache { dir, key })
    }

    /// Use an already-open directory capability.
    pub fn in_dir(dir: Dir, key: CacheKey) -> ArtifactCache {
        ArtifactCache { dir, key }
    }

    fn file_name(digest: &str, tag: &str) -> Option<String> {
        // INVARIANT: only hex reaches the file name, whatever the caller passes.
        let hex = digest.strip_prefix("sha256:")?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        if !tag.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(format!("{hex}-{tag}.cwasm"))
    }

    fn mac(&self, digest: &str, tag: &str, artifact: &[u8]) -> [u8; 32] {
        // NUL-separated: neither a digest nor a tag holds one, so no two
        // (digest, tag) pairs give the same MAC input.
        self.key.mac(&[
            b"verdict compiled artifact v1\0",
            digest.as_bytes(),
            b"\0",
            tag.as_bytes(),
            b"\0",
            artifact,
        ])
    }

    /// The artifact cached for (`digest`, `tag`), only if its MAC verifies.
    /// A missing entry is `None`; so is a forged or damaged one, which is
    /// logged: the caller recompiles and overwrites it.
    pub fn get(&self, digest: &str, tag: &str) -> Option<Vec<u8>> {
        let name = Self::file_name(digest, tag)?;
        let mut entry = self.dir.read(&name).ok()?;
        let verified = entry.len() >= HEADER_LEN
            && entry.starts_with(MAGIC)
            && same(
                &entry[MAGIC.len()..HEADER_LEN],
                &self.mac(digest, tag, &entry[HEADER_LEN..]),
            );
        if !verified {
            tracing::warn!(
                digest,
                file = %name,
                "cached artifact failed verification (altered, swapped or from another key); \
                 not loading it, recompiling"
            );
            return None;
        }
        entry.drain(..HEADER_LEN);
        Some(entry)
    }

    /// Write via a temporary name and rename, so a crash never leaves a
    /// truncated artifact under the real name.
    pub fn put(&self, digest: &str, tag: &str, artifact: &[u8]) -> std::io::Result<()> {
        let name = Self::file_name(digest, tag).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "malformed digest")
        })?;
        let mut entry = Vec::with_capacity(HEADER_LEN + artifact.len());
        entry.extend_from_slice(MAGIC);
        entry.extend_from_slice(&self.mac(digest, tag, artifact));
        entry.extend_from_slice(artifact);
        let tmp = format!("{name}.tmp");
        self.dir.write(&tmp, &entry)?;
        self.dir.rename(&tmp, &self.dir, &name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> CacheKey {
        CacheKey::from_bytes([b; KEY_LEN])
    }

    #[test]
    fn only_hex_digests_make_file_names() {
        let good = format!("sha256:{}", "ab".repeat(32));
        assert!(ArtifactCache::file_name(&good, "00ff").is_some());
        assert!(ArtifactCache::file_name("sha256:../../etc/passwd", "00").is_none());
        assert!(ArtifactCache::file_name(&good, "../x").is_none());
        assert!(ArtifactCache::file_name("md5:abc", "00").is_none());
    }

    #[test]
    fn round_trips_through_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::open(tmp.path(), key(1)).unwrap();
        let d = format!("sha256:{}", "01".repeat(32));
        assert_eq!(cache.get(&d, "aa"), None);
        cache.put(&d, "aa", b"artifact").unwrap();
        assert_eq!(cache.get(&d, "aa").as_deref(), Some(&b"artifact"[..]));
        assert_eq!(cache.get(&d, "bb"), None);
    }

    /// RFC 4231 test cases 1, 2 and 6 (a key longer than the block).
    #[test]
    fn hmac_matches_rfc_4231() {
        let cases: [(&[u8], &[u8], &str); 3] = [
            (
                &[0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
        ];
        for (key, data, want) in cases {
            assert_eq!(hex::encode(hmac_sha256(key, &[data])), want);
        }
        // Split input is the same message.
        assert_eq!(
            hmac_sha256(b"Jefe", &[b"what do ya ", b"want for nothing?"]),
            hmac_sha256(b"Jefe", &[b"what do ya want for nothing?"])
        );
    }

    #[test]
    fn swapped_altered_or_foreign_entries_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::open(tmp.path(), key(1)).unwrap();
        let (a, b) = (
            format!("sha256:{}", "0a".repeat(32)),
            format!("sha256:{}", "0b".repeat(32)),
        );
        cache.put(&a, "aa", b"code of a").unwrap();
        cache.put(&b, "aa", b"code of b").unwrap();
        let path = |d: &str| tmp.path().join(ArtifactCache::file_name(d, "aa").unwrap());

        // Swapped on disk: each name now holds the other's entry.
        let (ea, eb) = (
            std::fs::read(path(&a)).unwrap(),
            std::fs::read(path(&b)).unwrap(),
        );
        std::fs::write(path(&a), &eb).unwrap();
        std::fs::write(path(&b), &ea).unwrap();
        assert_eq!(cache.get(&a, "aa"), None);
        assert_eq!(cache.get(&b, "aa"), None);

        // One byte of the artifact changed.
        let mut altered = ea.clone();
        *altered.last_mut().unwrap() ^= 1;
        std::fs::write(path(&a), &altered).unwrap();
        assert_eq!(cache.get(&a, "aa"), None);

        // A bare artifact (the old format), and a truncated entry.
        std::fs::write(path(&a), b"code of a").unwrap();
        assert_eq!(cache.get(&a, "aa"), None);
        std::fs::write(path(&a), &ea[..10]).unwrap();
        assert_eq!(cache.get(&a, "aa"), None);

        // Written under another key.
        std::fs::write(path(&a), &ea).unwrap();
        assert_eq!(cache.get(&a, "aa").as_deref(), Some(&b"code of a"[..]));
        let other = ArtifactCache::open(tmp.path(), key(2)).unwrap();
        assert_eq!(other.get(&a, "aa"), None);
    }

    #[test]
    fn the_key_is_created_once_private_and_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("artifact.key");
        let first = CacheKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = CacheKey::load_or_create(&path).unwrap();
        assert_eq!(first.0, again.0);
        // Loosened permissions are tightened again.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let again = CacheKey::load_or_create(&path).unwrap();
        assert_eq!(first.0, again.0);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
