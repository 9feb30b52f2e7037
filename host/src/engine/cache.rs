//! On-disk cache of precompiled policy artifacts, so a restart deserializes
//! (~100 µs) instead of recompiling (ms to s). Keyed by component digest and
//! the engine's compatibility tag; all access through a cap-std directory
//! capability, so no name can escape the cache directory.

use cap_std::ambient_authority;
use cap_std::fs::Dir;

pub struct ArtifactCache {
    dir: Dir,
}

impl ArtifactCache {
    /// Open (creating if needed) the cache directory at `path`.
    pub fn open(path: &std::path::Path) -> std::io::Result<ArtifactCache> {
        std::fs::create_dir_all(path)?;
        let dir = Dir::open_ambient_dir(path, ambient_authority())?;
        Ok(ArtifactCache { dir })
    }

    /// Use an already-open directory capability.
    pub fn in_dir(dir: Dir) -> ArtifactCache {
        ArtifactCache { dir }
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

    pub fn get(&self, digest: &str, tag: &str) -> Option<Vec<u8>> {
        self.dir.read(Self::file_name(digest, tag)?).ok()
    }

    /// Write via a temporary name and rename, so a crash never leaves a
    /// truncated artifact under the real name.
    pub fn put(&self, digest: &str, tag: &str, artifact: &[u8]) -> std::io::Result<()> {
        let name = Self::file_name(digest, tag).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "malformed digest")
        })?;
        let tmp = format!("{name}.tmp");
        self.dir.write(&tmp, artifact)?;
        self.dir.rename(&tmp, &self.dir, &name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let cache = ArtifactCache::open(tmp.path()).unwrap();
        let d = format!("sha256:{}", "01".repeat(32));
        assert_eq!(cache.get(&d, "aa"), None);
        cache.put(&d, "aa", b"artifact").unwrap();
        assert_eq!(cache.get(&d, "aa").as_deref(), Some(&b"artifact"[..]));
        assert_eq!(cache.get(&d, "bb"), None);
    }
}
