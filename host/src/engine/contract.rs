//! The version of the WIT contract, and which components a server accepts.
//!
//! `wit/policy.wit` declares `package verdict:policy@X.Y.Z`. Every policy
//! component names that version in its imports (`verdict:policy/types@…`,
//! and `verdict:policy/host@…` when it logs), so the version it was built
//! against is readable before anything is compiled.
//!
//! The rule, checked at upload (and wherever a component is compiled):
//! - a component built against this server's contract version is accepted;
//! - one built against an **older compatible** version is accepted: same
//!   major version (`1.2.0` runs on a `1.4.1` server), or, while the
//!   contract is `0.x`, the same minor (`0.1.0` runs on `0.1.3`), as in
//!   semver where `0.x` minors may break;
//! - anything else is refused, naming both versions and what to do: a
//!   component built against a newer contract may use what this server does
//!   not have (upgrade the server, or rebuild with this server's SDK); one
//!   built against an incompatible older contract is rebuilt with the SDK
//!   this server's binary carries (`verdict policy sdk update`).
//!
//! The compatibility lines are the ones wasmtime's component linker uses
//! to resolve versioned imports (`…@0.1.0` is satisfied by a host's
//! `…@0.1.3`; `0.0.x` and pre-releases only by themselves), so an accepted
//! older component also links. Structural type checking by wasmtime still
//! applies on top: the version rule turns a mismatch into a message an
//! author can act on.

use std::fmt;

/// The WIT world policies implement, as this binary was built with it.
pub const WIT: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit/policy.wit"));

const PACKAGE: &str = "verdict:policy";

/// A semantic version, `major.minor.patch`, optionally with a pre-release
/// tag (which only matches itself exactly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Option<String>,
}

impl Version {
    pub fn parse(text: &str) -> Option<Version> {
        let (core, pre) = match text.split_once('-') {
            Some((c, p)) if !p.is_empty() => (c, Some(p.to_string())),
            Some(_) => return None,
            None => (text, None),
        };
        let mut parts = core.split('.').map(|p| {
            // No leading zeros, no signs: `01` is not a version.
            (!p.is_empty()
                && (p == "0" || !p.starts_with('0'))
                && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse::<u64>().ok())
            .flatten()
        });
        let v = Version {
            major: parts.next()??,
            minor: parts.next()??,
            patch: parts.next()??,
            pre,
        };
        parts.next().is_none().then_some(v)
    }

    /// Whether a component built against `self` runs on a server
    /// implementing `server` (see the module docs).
    pub fn runs_on(&self, server: &Version) -> bool {
        if self.pre.is_some() || server.pre.is_some() {
            return self == server;
        }
        let same_line = match (self.major, server.major) {
            (0, 0) => self.minor == server.minor && (self.minor > 0 || self.patch == server.patch),
            (a, b) => a == b,
        };
        same_line && (self.minor, self.patch) <= (server.minor, server.patch)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(p) = &self.pre {
            write!(f, "-{p}")?;
        }
        Ok(())
    }
}

/// The contract version this binary implements.
pub fn version() -> Version {
    WIT.lines()
        .find_map(|l| l.trim().strip_prefix("package verdict:policy@"))
        .and_then(|v| v.strip_suffix(';'))
        .and_then(Version::parse)
        .expect("wit/policy.wit declares `package verdict:policy@<semver>;`")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error(
        "the component was built against {PACKAGE}@{component}, newer than the \
         {PACKAGE}@{server} this server implements: upgrade Verdict to a release implementing \
         {PACKAGE}@{component}, or rebuild the policy with this server's SDK (`verdict policy \
         sdk update <project>` with this server's `verdict` binary, then `verdict policy build`)"
    )]
    Newer { component: String, server: String },
    #[error(
        "the component was built against {PACKAGE}@{component}, which this server \
         ({PACKAGE}@{server}) no longer accepts: rebuild the policy with this server's SDK \
         (`verdict policy sdk update <project>` with this server's `verdict` binary, then \
         `verdict policy build`)"
    )]
    Older { component: String, server: String },
    #[error(
        "the component imports `{name}`, which names no valid version of {PACKAGE}: build \
         it with a Verdict SDK (`verdict policy build`)"
    )]
    Unversioned { name: String },
    #[error(
        "the component imports {PACKAGE} at two versions ({a} and {b}): build it against \
         one contract"
    )]
    Mixed { a: String, b: String },
}

/// Check the `verdict:policy/…@version` names among a component's
/// top-level imports against this server's contract version.
pub fn check<'a>(import_names: impl IntoIterator<Item = &'a str>) -> Result<(), ContractError> {
    check_against(import_names, &version())
}

fn check_against<'a>(
    import_names: impl IntoIterator<Item = &'a str>,
    server: &Version,
) -> Result<(), ContractError> {
    let mut built: Option<(Version, String)> = None;
    for name in import_names {
        let Some(rest) = name.strip_prefix(PACKAGE).filter(|r| r.starts_with('/')) else {
            continue;
        };
        let version = rest
            .split_once('@')
            .and_then(|(_, v)| Version::parse(v))
            .ok_or_else(|| ContractError::Unversioned {
                name: name.to_string(),
            })?;
        match &built {
            Some((v, _)) if *v != version => {
                return Err(ContractError::Mixed {
                    a: v.to_string(),
                    b: version.to_string(),
                })
            }
            Some(_) => {}
            None => built = Some((version, name.to_string())),
        }
    }
    let Some((component, _)) = built else {
        // No contract import at all: wasmtime's type check against the
        // world decides (and names what is missing).
        return Ok(());
    };
    if component.runs_on(server) {
        return Ok(());
    }
    let (c, s) = (component.to_string(), server.to_string());
    let newer = (component.major, component.minor, component.patch)
        > (server.major, server.minor, server.patch);
    Err(if newer {
        ContractError::Newer {
            component: c,
            server: s,
        }
    } else {
        ContractError::Older {
            component: c,
            server: s,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn versions_parse_strictly() {
        assert_eq!(v("0.1.0").to_string(), "0.1.0");
        assert_eq!(v("1.2.3-rc.1").to_string(), "1.2.3-rc.1");
        for bad in [
            "", "1", "1.2", "1.2.3.4", "01.2.3", "1.x.3", "-1.2.3", "1.2.3-", " 1.2.3",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
        assert_eq!(version().to_string(), "0.1.0");
    }

    #[test]
    fn older_compatible_versions_run_and_the_rest_do_not() {
        let runs = |c: &str, s: &str| v(c).runs_on(&v(s));
        // The same version, and older compatible ones.
        assert!(runs("0.1.0", "0.1.0"));
        assert!(runs("0.1.0", "0.1.3"));
        assert!(runs("1.0.0", "1.4.1"));
        assert!(runs("1.3.9", "1.4.0"));
        // Newer than the server: it may use what the server lacks.
        assert!(!runs("0.1.4", "0.1.3"));
        assert!(!runs("1.5.0", "1.4.1"));
        // Another line: 0.x minors and majors break.
        assert!(!runs("0.1.0", "0.2.0"));
        assert!(!runs("0.2.0", "0.1.0"));
        assert!(!runs("1.0.0", "2.0.0"));
        assert!(!runs("0.9.0", "1.0.0"));
        // 0.0.x: every version is its own line.
        assert!(!runs("0.0.1", "0.0.2"));
        assert!(runs("0.0.2", "0.0.2"));
        // Pre-releases only match exactly.
        assert!(!runs("1.0.0-rc.1", "1.0.0"));
        assert!(runs("1.0.0-rc.1", "1.0.0-rc.1"));
    }

    #[test]
    fn the_message_names_both_versions_and_what_to_do() {
        let server = v("0.2.3");
        let check = |names: &[&str]| check_against(names.iter().copied(), &server);
        assert_eq!(
            check(&["verdict:policy/types@0.2.0", "verdict:policy/host@0.2.0"]),
            Ok(())
        );
        assert_eq!(check(&["wasi:io/poll@0.2.9"]), Ok(()));
        let newer = check(&["verdict:policy/types@0.3.0"])
            .unwrap_err()
            .to_string();
        assert!(
            newer.contains("verdict:policy@0.3.0")
                && newer.contains("verdict:policy@0.2.3")
                && newer.contains("upgrade Verdict"),
            "{newer}"
        );
        let older = check(&["verdict:policy/types@0.1.0"])
            .unwrap_err()
            .to_string();
        assert!(
            older.contains("verdict:policy@0.1.0")
                && older.contains("verdict:policy@0.2.3")
                && older.contains("verdict policy sdk update"),
            "{older}"
        );
        assert!(matches!(
            check(&["verdict:policy/types@0.2.0", "verdict:policy/host@0.2.1"]),
            Err(ContractError::Mixed { .. })
        ));
        assert!(matches!(
            check(&["verdict:policy/types"]),
            Err(ContractError::Unversioned { .. })
        ));
        // Another package that merely starts with the same letters.
        assert_eq!(check(&["verdict:policyx/types@9.0.0"]), Ok(()));
    }
}
