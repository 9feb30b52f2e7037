//! `verdict policy build`: compile a policy crate for wasm32-unknown-unknown
//! and wrap the core module into a component with `wit-component`.
//!
//! Two toolchains are supported, detected in this order:
//! 1. rustup with the `wasm32-unknown-unknown` target installed;
//! 2. Debian's `rustc-web`/`cargo-web`/`rust-web-src` plus `lld-NN`, which
//!    build the standard library for wasm from source (`-Zbuild-std`) on
//!    machines where rustup cannot download targets.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const TARGET: &str = "wasm32-unknown-unknown";
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_STD_SRC: &str = "/usr/lib/rustlib/src/rust/library";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "no toolchain that builds wasm32-unknown-unknown was found: run \
         `rustup target add wasm32-unknown-unknown`, or on Debian \
         `apt-get install rustc-web cargo-web rust-web-src lld-22`"
    )]
    NoToolchain,
    #[error("`{0}` has no Cargo.toml: pass the directory of a policy crate")]
    NotACrate(PathBuf),
    #[error(
        "`{0}` is not a policy project: expected Cargo.toml (Rust), pyproject.toml (Python) \
         or package.json (JavaScript/TypeScript)"
    )]
    NotAPolicy(PathBuf),
    #[error("`{tool}` was not found: install it with `{install}`")]
    MissingTool { tool: String, install: String },
    #[error("{0} failed (see its output above)")]
    ToolFailed(String),
    #[error("cannot find the `{sdk}` directory for `{dir}`: set its path in the project file")]
    NoSdk { sdk: String, dir: PathBuf },
    #[error("could not run `{cmd}`: {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cargo build failed (see the compiler output above)")]
    CargoFailed,
    #[error("cargo built no .wasm library for `{0}`: the crate needs `crate-type = [\"cdylib\"]`")]
    NoArtifact(PathBuf),
    #[error("cannot turn `{path}` into a component: {message}")]
    Componentize { path: PathBuf, message: String },
    #[error("{0}")]
    Io(String),
}

/// Which toolchain builds the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Toolchain {
    Rustup,
    Debian { linker: String },
}

impl Toolchain {
    pub fn detect() -> Result<Toolchain, BuildError> {
        if rustup_has_target() {
            return Ok(Toolchain::Rustup);
        }
        if Path::new(DEBIAN_RUSTC).exists() && Path::new(DEBIAN_STD_SRC).exists() {
            if let Some(linker) = find_wasm_ld() {
                return Ok(Toolchain::Debian { linker });
            }
        }
        Err(BuildError::NoToolchain)
    }

    fn cargo(&self) -> Command {
        match self {
            Toolchain::Rustup => {
                let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
                c.args(["build", "--release", "--target", TARGET]);
                c
            }
            Toolchain::Debian { linker } => {
                let mut c = Command::new(DEBIAN_CARGO);
                c.args(["build", "--release", "--target", TARGET])
                    .arg("-Zbuild-std=std,panic_abort")
                    // Without RUSTC, Debian's cargo would call rustup's rustc,
                    // which has no std sources.
                    .env("RUSTC", DEBIAN_RUSTC)
                    .env("RUSTC_BOOTSTRAP", "1")
                    .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", linker)
                    // Set by rustup's proxies when we run under `cargo run`;
                    // meaningless to Debian's cargo.
                    .env_remove("RUSTUP_TOOLCHAIN")
                    .env_remove("CARGO");
                c
            }
        }
    }
}

fn rustup_has_target() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.trim() == TARGET)
        })
        .unwrap_or(false)
}

/// `wasm-ld` or the newest versioned `wasm-ld-NN` on PATH.
fn find_wasm_ld() -> Option<String> {
    let path = std::env::var_os("PATH")?;
    let mut best: Option<(u32, String)> = None;
    for dir in std::env::split_paths(&path) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let version = if name == "wasm-ld" {
                0
            } else if let Some(v) = name.strip_prefix("wasm-ld-") {
                match v.parse() {
                    Ok(v) => v,
                    Err(_) => continue,
                }
            } else {
                continue;
            };
            if best.as_ref().is_none_or(|(b, _)| version > *b) {
                best = Some((version, name));
            }
        }
    }
    best.map(|(_, n)| n)
}

/// Build the policy project at `dir`, in the language its project file
/// names (see `polyglot.rs` for Python and JavaScript); returns the
/// component's path.
pub fn build(dir: &Path, out: Option<&Path>) -> Result<PathBuf, BuildError> {
    use super::polyglot::{self, Lang};
    match polyglot::detect(dir)? {
        Lang::Rust => build_rust(dir, out),
        Lang::Python => polyglot::build_python(dir, out),
        Lang::Js => polyglot::build_js(dir, out),
    }
}

/// Build the crate at `crate_dir`; write the component to `out` (default:
/// beside cargo's core module, as `<name>.component.wasm`). Returns its path.
pub fn build_rust(crate_dir: &Path, out: Option<&Path>) -> Result<PathBuf, BuildError> {
    let manifest = crate_dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(BuildError::NotACrate(crate_dir.to_path_buf()));
    }
    let toolchain = Toolchain::detect()?;
    let mut cmd = toolchain.cargo();
    cmd.arg("--manifest-path")
        .arg(&manifest)
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let output = cmd.output().map_err(|source| BuildError::Spawn {
        cmd: format!("{cmd:?}"),
        source,
    })?;
    if !output.status.success() {
        return Err(BuildError::CargoFailed);
    }
    let core = find_artifact(&String::from_utf8_lossy(&output.stdout), &manifest)
        .ok_or_else(|| BuildError::NoArtifact(crate_dir.to_path_buf()))?;
    let bytes = std::fs::read(&core)
        .map_err(|e| BuildError::Io(format!("reading `{}`: {e}", core.display())))?;
    let component = componentize(&bytes).map_err(|message| BuildError::Componentize {
        path: core.clone(),
        message,
    })?;
    let out = match out {
        Some(p) => p.to_path_buf(),
        None => core.with_extension("component.wasm"),
    };
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| BuildError::Io(format!("creating `{}`: {e}", parent.display())))?;
    }
    std::fs::write(&out, component)
        .map_err(|e| BuildError::Io(format!("writing `{}`: {e}", out.display())))?;
    Ok(out)
}

/// Wrap a core module (carrying wit-bindgen's component-type section) into a component.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>, String> {
    wit_component::ComponentEncoder::default()
        .module(core)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| format!("{e:#}"))
}

/// The `.wasm` cdylib cargo reported for the package at `manifest`.
fn find_artifact(messages: &str, manifest: &Path) -> Option<PathBuf> {
    let want = std::fs::canonicalize(manifest).ok()?;
    messages
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["manifest_path"]
                .as_str()
                .and_then(|p| std::fs::canonicalize(p).ok())
                .is_some_and(|p| p == want)
        })
        .filter_map(|m| {
            m["filenames"].as_array()?.iter().find_map(|f| {
                let f = f.as_str()?;
                f.ends_with(".wasm").then(|| PathBuf::from(f))
            })
        })
        // The last artifact reported is the final one.
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cdylib_of_the_requested_package_only() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("Cargo.toml");
        std::fs::write(&manifest, "").unwrap();
        let other = dir.path().join("other.toml");
        std::fs::write(&other, "").unwrap();
        let msgs = format!(
            "{}\n{}\nnot json\n",
            serde_json::json!({"reason": "compiler-artifact", "manifest_path": other,
                "filenames": ["/t/other.wasm"]}),
            serde_json::json!({"reason": "compiler-artifact", "manifest_path": manifest,
                "filenames": ["/t/libx.rlib", "/t/x.wasm"]}),
        );
        assert_eq!(
            find_artifact(&msgs, &manifest),
            Some(PathBuf::from("/t/x.wasm"))
        );
    }

    #[test]
    fn a_directory_without_cargo_toml_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = build_rust(dir.path(), None).unwrap_err();
        assert!(err.to_string().contains("has no Cargo.toml"), "{err}");
        let err = build(dir.path(), None).unwrap_err();
        assert!(err.to_string().contains("is not a policy project"), "{err}");
    }

    #[test]
    fn componentize_refuses_garbage() {
        let err = componentize(b"\0asm\x01\0\0\0garbage").unwrap_err();
        assert!(!err.is_empty());
    }
}
