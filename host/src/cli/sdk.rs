//! The WIT contract and the three SDKs, carried inside the binary.
//!
//! Policy authors work in repositories of their own, not in a checkout of
//! Verdict, and often with nothing but the `verdict` binary. So the binary
//! embeds, at build time, the exact sources of the WIT world and of the
//! Rust, Python and TypeScript SDKs it was built with, and:
//!
//! - `verdict policy new` **vendors** the SDK of the chosen language into
//!   the new project (`vendor/verdict-sdk`, `vendor/verdict-sdk-python` or
//!   `vendor/verdict-sdk-js`), with `vendor/verdict-sdk.toml` recording the
//!   binary's version, the contract version and a SHA-256 of each file;
//! - `verdict policy sdk update` replaces the vendored SDK with the
//!   binary's, refusing (without `--force`) when a vendored file was edited,
//!   since the edit would be lost silently;
//! - `verdict policy sdk write` writes one SDK as a package directory, the
//!   form `cargo package`, `pip wheel` and `npm pack` take;
//! - `verdict wit` prints or writes the WIT.
//!
//! Why vendoring rather than a registry dependency: no SDK is published to
//! crates.io, PyPI or npm yet, and a vendored copy builds offline, is
//! reviewed in the project's own history, and can never drift from the
//! contract the server checks. The packaging metadata is ready (a test
//! builds all three packages) so the scaffold can switch to an exact
//! registry version once the packages are published.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

use super::scaffold::Lang;

/// Embed files of a directory of the Verdict repository: `(path inside the
/// package, contents)`.
macro_rules! embed {
    ($root:literal: $($file:literal),+ $(,)?) => {
        &[$(($file, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../", $root, "/", $file)))),+]
    };
}

pub use crate::engine::contract::WIT;
/// The `policy` world plus the `preinit` export the Rust SDK adds for
/// pre-initialised snapshots (same package, same version).
const PREINIT_WIT: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit/preinit.wit"));
const LICENSE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../LICENSE"));

const RUST_FILES: &[(&str, &str)] = embed!("policies/sdk":
    "Cargo.toml", "README.md", "src/lib.rs", "src/log.rs", "src/output.rs", "src/prepared.rs",
    "src/stats.rs", "src/testing.rs",
);
const PYTHON_FILES: &[(&str, &str)] = embed!("policies/sdk-python":
    "pyproject.toml", "README.md", "verdict_sdk/__init__.py", "verdict_sdk/component.py",
    "verdict_sdk/log.py", "verdict_sdk/stats.py", "verdict_sdk/testing.py",
);
const JS_FILES: &[(&str, &str)] = embed!("policies/sdk-js":
    "package.json", "tsconfig.json", "README.md", "node.d.ts", "scripts/wit-types.mjs",
    "src/component.ts", "src/index.ts", "src/stats.ts", "src/testing.ts",
);

/// Where a project keeps its vendored SDK, and the record of what was vendored.
pub const VENDOR: &str = "vendor";
pub const MANIFEST: &str = "vendor/verdict-sdk.toml";

/// One SDK as the binary carries it.
pub struct Sdk {
    pub lang: Lang,
    /// Directory name under `vendor/`.
    pub dir: &'static str,
    files: &'static [(&'static str, &'static str)],
    /// Whether the package carries its own copy of the WIT (the Rust and
    /// TypeScript bindings are generated from it at build time).
    with_wit: bool,
}

impl Sdk {
    pub fn of(lang: Lang) -> Sdk {
        match lang {
            Lang::Rust => Sdk {
                lang,
                dir: "verdict-sdk",
                files: RUST_FILES,
                with_wit: true,
            },
            Lang::Python => Sdk {
                lang,
                dir: "verdict-sdk-python",
                files: PYTHON_FILES,
                with_wit: false,
            },
            Lang::Js => Sdk {
                lang,
                dir: "verdict-sdk-js",
                files: JS_FILES,
                with_wit: true,
            },
        }
    }

    /// Every file of the package: `(relative path, contents)`.
    pub fn files(&self) -> Vec<(&'static str, &'static str)> {
        let mut all = self.files.to_vec();
        all.push(("LICENSE", LICENSE));
        if self.with_wit {
            all.extend(WIT_FILES);
        }
        all
    }

    /// Write the package into `dir` (created; must not hold an SDK already).
    pub fn write(&self, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        for (rel, text) in self.files() {
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating `{}`", parent.display()))?;
            }
            std::fs::write(&path, text).with_context(|| format!("writing `{}`", path.display()))?;
            written.push(path);
        }
        Ok(written)
    }
}

/// The contract version this binary implements (and its SDKs bind).
pub fn contract_version() -> String {
    crate::engine::contract::version().to_string()
}

fn lang_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "rust",
        Lang::Python => "python",
        Lang::Js => "js",
    }
}

fn sha256(text: &[u8]) -> String {
    hex::encode(Sha256::digest(text))
}

/// `vendor/verdict-sdk.toml`: what `vendor` holds and what it was written by.
fn manifest(sdk: &Sdk) -> String {
    let mut out = format!(
        "# Written by `verdict policy new` and `verdict policy sdk update`: the SDK in\n\
         # vendor/{dir} is the one verdict {binary} carries, for the contract\n\
         # verdict:policy@{contract}. Refresh it with `verdict policy sdk update .`,\n\
         # which refuses to overwrite vendored files edited since (see [files]).\n\
         verdict = \"{binary}\"\n\
         contract = \"verdict:policy@{contract}\"\n\
         language = \"{lang}\"\n\
         sdk = \"{dir}\"\n\n[files]\n",
        dir = sdk.dir,
        binary = env!("CARGO_PKG_VERSION"),
        contract = contract_version(),
        lang = lang_name(sdk.lang),
    );
    for (rel, text) in sdk.files() {
        out.push_str(&format!("\"{rel}\" = \"{}\"\n", sha256(text.as_bytes())));
    }
    out
}

/// Vendor the SDK of `lang` into `project/vendor/`. Returns the files written.
pub fn vendor(project: &Path, lang: Lang) -> anyhow::Result<Vec<PathBuf>> {
    let sdk = Sdk::of(lang);
    let mut written = sdk.write(&project.join(VENDOR).join(sdk.dir))?;
    let manifest_path = project.join(MANIFEST);
    std::fs::write(&manifest_path, manifest(&sdk))
        .with_context(|| format!("writing `{}`", manifest_path.display()))?;
    written.push(manifest_path);
    Ok(written)
}

/// What `verdict policy sdk update` did.
#[derive(Debug)]
pub struct Updated {
    pub lang: Lang,
    /// The binary version recorded before (None: the project had no record).
    pub from: Option<String>,
    pub to: &'static str,
    /// Vendored files whose contents changed (added, changed or removed).
    pub changed: Vec<String>,
}

/// Replace the vendored SDK of `project` with the one this binary carries.
pub fn update(project: &Path, force: bool) -> anyhow::Result<Updated> {
    let lang = match super::polyglot::detect(project)? {
        super::polyglot::Lang::Rust => Lang::Rust,
        super::polyglot::Lang::Python => Lang::Python,
        super::polyglot::Lang::Js => Lang::Js,
    };
    let sdk = Sdk::of(lang);
    let vendored = project.join(VENDOR).join(sdk.dir);
    let manifest_path = project.join(MANIFEST);
    let recorded = match std::fs::read_to_string(&manifest_path) {
        Ok(text) => Some(
            toml::from_str::<toml::Table>(&text)
                .with_context(|| format!("`{}` is not valid TOML", manifest_path.display()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading `{}`", manifest_path.display())),
    };
    let (from, old_files) = match &recorded {
        Some(t) => {
            if let Some(l) = t.get("language").and_then(|v| v.as_str()) {
                if l != lang_name(lang) {
                    bail!(
                        "`{}` records a {l} SDK, but `{}` is a {} project",
                        manifest_path.display(),
                        project.display(),
                        lang_name(lang)
                    );
                }
            }
            let files: BTreeMap<String, String> = t
                .get("files")
                .and_then(|f| f.as_table())
                .map(|f| {
                    f.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            (
                t.get("verdict")
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
                files,
            )
        }
        None if force || !vendored.exists() => (None, BTreeMap::new()),
        None => bail!(
            "`{}` has no `{MANIFEST}`, so local edits to `{}` cannot be told apart from \
             an older SDK: pass --force to replace it anyway",
            project.display(),
            vendored.display()
        ),
    };
    if !force {
        let edited: Vec<&String> = old_files
            .iter()
            .filter(
                |(rel, digest)| match std::fs::read(vendored.join(rel.as_str())) {
                    Ok(bytes) => sha256(&bytes) != **digest,
                    // A removed file is not an edit worth keeping.
                    Err(_) => false,
                },
            )
            .map(|(rel, _)| rel)
            .collect();
        if !edited.is_empty() {
            bail!(
                "vendored SDK files were edited since they were written: {}; updating would \
                 lose the edits. Move them into the policy's own sources, or pass --force",
                edited
                    .iter()
                    .map(|r| format!("{}/{VENDOR}/{}/{r}", project.display(), sdk.dir))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let new_files: BTreeMap<String, String> = sdk
        .files()
        .iter()
        .map(|(rel, text)| (rel.to_string(), sha256(text.as_bytes())))
        .collect();
    let mut changed: Vec<String> = new_files
        .iter()
        .filter(|(rel, digest)| old_files.get(*rel) != Some(digest))
        .map(|(rel, _)| rel.clone())
        .chain(
            old_files
                .keys()
                .filter(|rel| !new_files.contains_key(*rel))
                .cloned(),
        )
        .collect();
    changed.sort();
    if vendored.exists() {
        std::fs::remove_dir_all(&vendored)
            .with_context(|| format!("removing `{}`", vendored.display()))?;
    }
    vendor(project, lang)?;
    Ok(Updated {
        lang,
        from,
        to: env!("CARGO_PKG_VERSION"),
        changed,
    })
}

/// The files of `wit/`, as a package directory holds them.
const WIT_FILES: [(&str, &str); 2] = [("wit/policy.wit", WIT), ("wit/preinit.wit", PREINIT_WIT)];

/// `verdict wit`: the contract (`policy.wit`) on stdout, or every file of
/// the WIT package written into `out/`.
pub fn wit(out: Option<&Path>) -> anyhow::Result<Vec<PathBuf>> {
    let Some(dir) = out else {
        print!("{WIT}");
        return Ok(Vec::new());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating `{}`", dir.display()))?;
    let mut written = Vec::new();
    for (rel, text) in WIT_FILES {
        let path = dir.join(rel.trim_start_matches("wit/"));
        std::fs::write(&path, text).with_context(|| format!("writing `{}`", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// Every source file of each SDK in the repository is embedded: a file
    /// added to an SDK but not to the lists above would be missing from
    /// every vendored copy.
    #[test]
    fn every_sdk_source_file_is_embedded() {
        for (lang, root, dirs, ext) in [
            (Lang::Rust, "policies/sdk", &["src"][..], "rs"),
            (
                Lang::Python,
                "policies/sdk-python",
                &["verdict_sdk"][..],
                "py",
            ),
            (Lang::Js, "policies/sdk-js", &["src", "scripts"][..], ""),
        ] {
            let embedded: Vec<&str> = Sdk::of(lang).files().iter().map(|(p, _)| *p).collect();
            for dir in dirs {
                for entry in std::fs::read_dir(repo().join(root).join(dir)).unwrap() {
                    let path = entry.unwrap().path();
                    if !path.is_file()
                        || !path.extension().is_some_and(|e| ext.is_empty() || e == ext)
                    {
                        continue;
                    }
                    let rel = format!("{dir}/{}", path.file_name().unwrap().to_string_lossy());
                    assert!(
                        embedded.contains(&rel.as_str()),
                        "{root}/{rel} is not embedded: add it to the list in cli/sdk.rs"
                    );
                }
            }
        }
    }

    /// Every file of `wit/` travels too: the SDKs generate their bindings
    /// from the whole package directory.
    #[test]
    fn every_wit_file_is_embedded() {
        for entry in std::fs::read_dir(repo().join("wit")).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let rel = format!("wit/{name}");
            assert!(
                WIT_FILES.iter().any(|(p, _)| *p == rel),
                "{rel} is not embedded: add it to WIT_FILES in cli/sdk.rs"
            );
        }
    }

    /// Each SDK's package version is the contract version: publishing one
    /// under another version would break the rule that tells authors which
    /// SDK builds for which server.
    #[test]
    fn sdk_versions_are_the_contract_version() {
        let v = contract_version();
        let v = v.as_str();
        let file = |lang, name: &str| {
            Sdk::of(lang)
                .files()
                .into_iter()
                .find(|(p, _)| *p == name)
                .unwrap()
                .1
        };
        let cargo: toml::Table = toml::from_str(file(Lang::Rust, "Cargo.toml")).unwrap();
        assert_eq!(cargo["package"]["version"].as_str(), Some(v));
        let py: toml::Table = toml::from_str(file(Lang::Python, "pyproject.toml")).unwrap();
        assert_eq!(py["project"]["version"].as_str(), Some(v));
        let js: serde_json::Value = serde_json::from_str(file(Lang::Js, "package.json")).unwrap();
        assert_eq!(js["version"].as_str(), Some(v));
    }

    #[test]
    fn update_replaces_the_sdk_and_refuses_to_lose_edits() {
        let tmp = tempfile::tempdir().unwrap();
        let project = tmp.path().join("gate");
        std::fs::create_dir(&project).unwrap();
        std::fs::write(
            project.join("pyproject.toml"),
            "[project]\nname = \"gate\"\n",
        )
        .unwrap();
        vendor(&project, Lang::Python).unwrap();
        let stats = project.join("vendor/verdict-sdk-python/verdict_sdk/stats.py");
        assert!(stats.is_file());
        let text = std::fs::read_to_string(project.join(MANIFEST)).unwrap();
        let m: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(m["verdict"].as_str(), Some(env!("CARGO_PKG_VERSION")));
        assert_eq!(m["language"].as_str(), Some("python"));

        // Unchanged: nothing to report, files intact.
        let u = update(&project, false).unwrap();
        assert!(u.changed.is_empty(), "{:?}", u.changed);
        assert_eq!(u.from.as_deref(), Some(env!("CARGO_PKG_VERSION")));

        // An older SDK (recorded digests differ, files match them): replaced.
        let (_, current) = PYTHON_FILES
            .iter()
            .find(|(p, _)| *p == "verdict_sdk/stats.py")
            .unwrap();
        let old = text.replace(&sha256(current.as_bytes()), &sha256(b"old"));
        std::fs::write(
            project.join(MANIFEST),
            old.replace(env!("CARGO_PKG_VERSION"), "0.0.1"),
        )
        .unwrap();
        std::fs::write(&stats, "old").unwrap();
        let u = update(&project, false).unwrap();
        assert_eq!(u.from.as_deref(), Some("0.0.1"));
        assert_eq!(u.changed, vec!["verdict_sdk/stats.py".to_string()]);
        assert_ne!(std::fs::read_to_string(&stats).unwrap(), "old");

        // An edit made in the project: refused by name, kept, unless forced.
        std::fs::write(&stats, "# my change\n").unwrap();
        let err = update(&project, false).unwrap_err().to_string();
        assert!(
            err.contains("verdict_sdk/stats.py") && err.contains("--force"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&stats).unwrap(), "# my change\n");
        update(&project, true).unwrap();
        assert_ne!(std::fs::read_to_string(&stats).unwrap(), "# my change\n");

        // A Rust project's record does not fit a Python project.
        std::fs::write(project.join(MANIFEST), "language = \"rust\"\n").unwrap();
        let err = update(&project, false).unwrap_err().to_string();
        assert!(
            err.contains("rust SDK") && err.contains("python project"),
            "{err}"
        );
    }

    #[test]
    fn wit_is_written_where_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = wit(Some(&tmp.path().join("contract"))).unwrap();
        assert_eq!(std::fs::read_to_string(&paths[0]).unwrap(), WIT);
        assert!(paths[1].ends_with("preinit.wit"), "{paths:?}");
        assert!(WIT.contains(&format!("package verdict:policy@{};", contract_version())));
    }
}
