//! `verdict policy build` for Python and JavaScript/TypeScript policies.
//!
//! - Python (a directory with `pyproject.toml`): componentize-py bundles the
//!   project, the `verdict_sdk` package and a CPython interpreter into a
//!   component. `[tool.verdict]` names the entry module (`app`, default) and
//!   the SDK directory (default: `policies/sdk-python` found upwards).
//! - JavaScript/TypeScript (a directory with `package.json`): the WIT's
//!   TypeScript declarations are generated with `jco types`, TypeScript is
//!   compiled with `tsc`, and componentize-js turns the entry module into a
//!   component (with `wasi:http` left out: policies have no network). The
//!   `verdict` key of `package.json` names the entry (`src/policy.ts`) and
//!   the SDK directory.
//!
//! The WIT world is the one this binary was built with (written to a
//! temporary directory), so a policy always builds against the contract the
//! host checks. Tools are looked up in `VERDICT_TOOLCHAIN` (a directory
//! holding `venv/` and `js/node_modules/`), then in `.toolchain/` in the
//! policy's directory or any directory above it (where `make toolchain`
//! installs them), then on `PATH`; a missing tool is an error naming the
//! command that installs it.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::build::BuildError;

use super::sdk::WIT;

pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
pub const COMPONENTIZE_JS_VERSION: &str = "0.23.0";
pub const JCO_VERSION: &str = "1.35.0";
pub const TYPESCRIPT_VERSION: &str = "5.9.3";

fn py_install() -> String {
    format!(
        "python3 -m venv .toolchain/venv && .toolchain/venv/bin/pip install \
         componentize-py=={COMPONENTIZE_PY_VERSION} (or `make toolchain` in the Verdict repository)"
    )
}

fn js_install() -> String {
    format!(
        "npm install --prefix .toolchain/js @bytecodealliance/componentize-js@{COMPONENTIZE_JS_VERSION} \
         @bytecodealliance/jco@{JCO_VERSION} typescript@{TYPESCRIPT_VERSION} \
         (or `make toolchain` in the Verdict repository)"
    )
}

/// Which language a policy directory is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

/// Detect the language from the project file in `dir`.
pub fn detect(dir: &Path) -> Result<Lang, BuildError> {
    if dir.join("Cargo.toml").is_file() {
        Ok(Lang::Rust)
    } else if dir.join("pyproject.toml").is_file() {
        Ok(Lang::Python)
    } else if dir.join("package.json").is_file() {
        Ok(Lang::Js)
    } else {
        Err(BuildError::NotAPolicy(dir.to_path_buf()))
    }
}

/// Directories that may hold `make toolchain`'s tools, nearest first.
fn toolchain_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("VERDICT_TOOLCHAIN") {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(abs) = std::fs::canonicalize(dir) {
        dirs.extend(abs.ancestors().map(|a| a.join(".toolchain")));
    }
    dirs
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn write_wit() -> Result<tempfile::TempDir, BuildError> {
    let tmp =
        tempfile::tempdir().map_err(|e| BuildError::Io(format!("temporary directory: {e}")))?;
    std::fs::write(tmp.path().join("policy.wit"), WIT)
        .map_err(|e| BuildError::Io(format!("writing the WIT: {e}")))?;
    Ok(tmp)
}

fn run(mut cmd: Command, what: &str) -> Result<(), BuildError> {
    let status = cmd.status().map_err(|source| BuildError::Spawn {
        cmd: format!("{cmd:?}"),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::ToolFailed(what.to_string()))
    }
}

fn prepare_out(out: &Path) -> Result<(), BuildError> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| BuildError::Io(format!("creating `{}`: {e}", parent.display())))?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, BuildError> {
    std::fs::read_to_string(path)
        .map_err(|e| BuildError::Io(format!("reading `{}`: {e}", path.display())))
}

/// The SDK directory: as configured (relative to the project), else found
/// upwards as `policies/<name>` or `<name>`.
fn sdk_dir(dir: &Path, configured: Option<&str>, name: &str) -> Result<PathBuf, BuildError> {
    let found = match configured {
        Some(p) => Some(dir.join(p)),
        None => std::fs::canonicalize(dir).ok().and_then(|abs| {
            abs.ancestors()
                .flat_map(|a| [a.join("policies").join(name), a.join(name)])
                .find(|p| p.is_dir())
        }),
    };
    found
        .filter(|p| p.is_dir())
        .ok_or_else(|| BuildError::NoSdk {
            sdk: name.to_string(),
            dir: dir.to_path_buf(),
        })
}

/// Build a Python policy project; returns the component's path.
pub fn build_python(dir: &Path, out: Option<&Path>) -> Result<PathBuf, BuildError> {
    let manifest: toml::Table = toml::from_str(&read(&dir.join("pyproject.toml"))?)
        .map_err(|e| BuildError::Io(format!("`{}/pyproject.toml`: {e}", dir.display())))?;
    let verdict = manifest
        .get("tool")
        .and_then(|t| t.get("verdict"))
        .and_then(|v| v.as_table());
    let setting = |key: &str| verdict.and_then(|v| v.get(key)).and_then(|v| v.as_str());
    let app = setting("app").unwrap_or("app");
    let sdk = sdk_dir(dir, setting("sdk"), "sdk-python")?;
    let name = manifest
        .get("project")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| dir_name(dir));
    let tool = toolchain_dirs(dir)
        .into_iter()
        .map(|d| d.join("venv/bin/componentize-py"))
        .find(|p| p.is_file())
        .or_else(|| on_path("componentize-py"))
        .ok_or_else(|| BuildError::MissingTool {
            tool: "componentize-py".into(),
            install: py_install(),
        })?;
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join("build").join(format!("{name}.wasm")));
    prepare_out(&out)?;
    let wit = write_wit()?;
    let mut cmd = Command::new(tool);
    cmd.arg("-d")
        .arg(wit.path())
        .args(["-w", "policy", "componentize", "-p"])
        .arg(dir)
        .arg("-p")
        .arg(&sdk)
        .arg(app)
        .arg("-o")
        .arg(&out);
    run(cmd, "componentize-py")?;
    Ok(out)
}

/// Build a JavaScript or TypeScript policy project; returns the component's path.
pub fn build_js(dir: &Path, out: Option<&Path>) -> Result<PathBuf, BuildError> {
    let manifest: serde_json::Value = serde_json::from_str(&read(&dir.join("package.json"))?)
        .map_err(|e| BuildError::Io(format!("`{}/package.json`: {e}", dir.display())))?;
    let entry = manifest["verdict"]["entry"]
        .as_str()
        .unwrap_or("src/policy.ts");
    let sdk = sdk_dir(dir, manifest["verdict"]["sdk"].as_str(), "sdk-js")?;
    let name = manifest["name"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| dir_name(dir));
    let modules = toolchain_dirs(dir)
        .into_iter()
        .map(|d| d.join("js/node_modules"))
        .chain([dir.join("node_modules")])
        .find(|m| m.join(".bin/componentize-js").is_file())
        .ok_or_else(|| BuildError::MissingTool {
            tool: "componentize-js".into(),
            install: js_install(),
        })?;
    let node = on_path("node").ok_or_else(|| BuildError::MissingTool {
        tool: "node".into(),
        install: "apt-get install nodejs npm".into(),
    })?;
    let wit = write_wit()?;
    let js_entry = if entry.ends_with(".ts") {
        // The WIT's TypeScript declarations, then the TypeScript itself.
        let mut types = Command::new(&node);
        types
            .arg(sdk.join("scripts/wit-types.mjs"))
            .arg(&modules)
            .arg(wit.path())
            .arg(sdk.join("generated"));
        run(types, "jco types")?;
        let tsc = modules.join(".bin/tsc");
        if !tsc.is_file() {
            return Err(BuildError::MissingTool {
                tool: "tsc".into(),
                install: js_install(),
            });
        }
        let mut cmd = Command::new(tsc);
        cmd.arg("-p").arg(dir);
        run(cmd, "tsc")?;
        compiled_entry(dir, entry)?
    } else {
        dir.join(entry)
    };
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join("build").join(format!("{name}.wasm")));
    prepare_out(&out)?;
    let mut cmd = Command::new(modules.join(".bin/componentize-js"));
    cmd.arg(&js_entry)
        .arg("--wit")
        .arg(wit.path())
        .args([
            "--world-name",
            "policy",
            "-d",
            "http",
            "-d",
            "fetch-event",
            "-o",
        ])
        .arg(&out);
    run(cmd, "componentize-js")?;
    Ok(out)
}

/// Where tsc put the compiled entry: under `dist/`, below the directory
/// tsc took as its root (the project, or a parent shared with the SDK).
fn compiled_entry(dir: &Path, entry: &str) -> Result<PathBuf, BuildError> {
    let js = Path::new(entry).with_extension("js");
    let dist = dir.join("dist");
    // tsc mirrors the source tree below the common root of its inputs: the
    // project itself, or a directory above it shared with the SDK.
    let direct = dist.join(&js);
    let found = if direct.is_file() {
        Some(direct)
    } else {
        find_suffix(&dist, &Path::new(&dir_name(dir)).join(&js), 12)
    };
    found.ok_or_else(|| {
        BuildError::Io(format!(
            "tsc wrote no `{}` under `{}` (set compilerOptions.outDir to \"dist\")",
            js.display(),
            dist.display()
        ))
    })
}

/// A file under `root` (at most `depth` levels down) whose path ends with `suffix`.
fn find_suffix(root: &Path, suffix: &Path, depth: usize) -> Option<PathBuf> {
    let candidate = root.join(suffix);
    if candidate.is_file() {
        return Some(candidate);
    }
    if depth == 0 {
        return None;
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.iter().find_map(|d| find_suffix(d, suffix, depth - 1))
}

fn dir_name(dir: &Path) -> String {
    std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "policy".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_comes_from_the_project_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = detect(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("Cargo.toml")
                && err.contains("pyproject.toml")
                && err.contains("package.json"),
            "{err}"
        );
        std::fs::write(dir.path().join("package.json"), "{}").unwrap();
        assert_eq!(detect(dir.path()).unwrap(), Lang::Js);
        std::fs::write(dir.path().join("pyproject.toml"), "").unwrap();
        assert_eq!(detect(dir.path()).unwrap(), Lang::Python);
        std::fs::write(dir.path().join("Cargo.toml"), "").unwrap();
        assert_eq!(detect(dir.path()).unwrap(), Lang::Rust);
    }

    #[test]
    fn a_missing_toolchain_names_the_install_command() {
        let dir = tempfile::tempdir().unwrap();
        let sdk = dir.path().join("sdk-python");
        std::fs::create_dir(&sdk).unwrap();
        std::fs::write(
            dir.path().join("pyproject.toml"),
            "[project]\nname = \"p\"\n[tool.verdict]\nsdk = \"sdk-python\"\n",
        )
        .unwrap();
        // No `.toolchain` above a temporary directory; an empty PATH.
        let err = with_env(|| build_python(dir.path(), None))
            .unwrap_err()
            .to_string();
        assert!(err.contains("componentize-py"), "{err}");
        assert!(err.contains("pip install componentize-py==0.25.1"), "{err}");

        std::fs::write(
            dir.path().join("package.json"),
            r#"{"verdict": {"sdk": "sdk-python"}}"#,
        )
        .unwrap();
        let err = with_env(|| build_js(dir.path(), None))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("componentize-js") && err.contains("npm install"),
            "{err}"
        );
    }

    /// Run `f` with no tool on PATH and no VERDICT_TOOLCHAIN. Tests in this
    /// module are the only ones reading these variables.
    fn with_env<R>(f: impl FnOnce() -> R) -> R {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let path = std::env::var_os("PATH");
        let tc = std::env::var_os("VERDICT_TOOLCHAIN");
        std::env::set_var("PATH", "");
        std::env::remove_var("VERDICT_TOOLCHAIN");
        let r = f();
        if let Some(p) = path {
            std::env::set_var("PATH", p);
        }
        if let Some(t) = tc {
            std::env::set_var("VERDICT_TOOLCHAIN", t);
        }
        r
    }
}
