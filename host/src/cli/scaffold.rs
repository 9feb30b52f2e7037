//! `verdict policy new`: a policy crate that builds and passes its fixture on
//! the first try, so a platform engineer starts from something green.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

pub struct Created {
    pub files: Vec<PathBuf>,
}

/// Create `dir` as a new policy crate named after its last path component.
pub fn new_policy(dir: &Path, sdk: Option<&Path>) -> anyhow::Result<Created> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("the policy directory needs a name")?;
    if !crate::engine::valid_name(&name) {
        bail!("invalid policy name `{name}`: use lowercase letters, digits, `-`, `_` and `.`");
    }
    if dir.exists() {
        bail!("`{}` already exists; pick a new directory", dir.display());
    }
    let sdk = match sdk {
        Some(p) => p.to_path_buf(),
        None => find_sdk().context(
            "cannot find the `verdict-sdk` crate (policies/sdk) from here: pass --sdk <path>",
        )?,
    };
    let sdk = std::fs::canonicalize(&sdk)
        .with_context(|| format!("cannot open the SDK at `{}`", sdk.display()))?;
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::create_dir_all(dir.join("fixtures"))?;
    let ident = name.replace(['-', '.'], "_");
    let files = [
        (dir.join("Cargo.toml"), cargo_toml(&name, &sdk)),
        (dir.join("src/lib.rs"), lib_rs(&name, &ident)),
        (
            dir.join("fixtures/small-change-promotes.json"),
            FIXTURE_OK.to_string(),
        ),
        (
            dir.join("fixtures/big-change-holds.json"),
            FIXTURE_BIG.to_string(),
        ),
    ];
    for (path, text) in &files {
        std::fs::write(path, text).with_context(|| format!("writing `{}`", path.display()))?;
    }
    Ok(Created {
        files: files.into_iter().map(|(p, _)| p).collect(),
    })
}

fn find_sdk() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .flat_map(|d| [d.join("policies/sdk"), d.join("sdk")])
        .find(|p| p.join("Cargo.toml").is_file())
}

fn cargo_toml(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
verdict-sdk = {{ path = "{sdk}" }}
serde = {{ version = "1", features = ["derive"] }}

# A standalone workspace, so the crate builds wherever it lives.
[workspace]

[profile.release]
opt-level = "s"
lto = true
panic = "abort"
strip = true
codegen-units = 1
"#,
        sdk = sdk.display()
    )
}

fn lib_rs(name: &str, ident: &str) -> String {
    format!(
        r#"//! `{name}`: holds changes larger than `max_lines`, promotes the rest.
use serde::{{Deserialize, Serialize}};
use verdict_sdk::*;

#[derive(Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {{
    max_lines: u32,
}}

impl Default for Settings {{
    fn default() -> Self {{
        Settings {{ max_lines: 500 }}
    }}
}}

struct {ident};

impl Policy for {ident} {{
    fn describe() -> Info {{
        Info::new("{name}", env!("CARGO_PKG_VERSION"), "holds large changes")
            .with_default_settings(&Settings::default())
    }}

    fn validate_settings(settings: String) -> Result<(), String> {{
        parse_settings::<Settings>(&settings).map(|_| ())
    }}

    fn evaluate(input: Input) -> Result<Outcome, String> {{
        let s: Settings = parse_settings(&input.settings)?;
        let lines = input.change.lines_added + input.change.lines_removed;
        let reason = Reason::new(format!("{{lines}} lines changed (limit {{}})", s.max_lines))
            .on_metric("lines_changed", lines as f64, Some(s.max_lines as f64));
        if lines > s.max_lines {{
            Ok(Outcome::hold(vec![reason]))
        }} else {{
            Ok(Outcome::promote(vec![reason]))
        }}
    }}
}}

verdict_sdk::export!({ident});

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn big_changes_hold() {{
        let mut input = Input::default();
        input.change.lines_added = 900;
        let out = {ident}::evaluate(input).unwrap();
        assert_eq!(out.verdict(), Some(Verdict::Hold));
    }}
}}
"#
    )
}

const FIXTURE_OK: &str = r#"{
  "description": "a small change is promoted",
  "input": {
    "deployment": {"service": "checkout", "environment": "production", "version": "v2"},
    "change": {"lines_added": 10, "lines_removed": 2}
  },
  "expect": "promote"
}
"#;

const FIXTURE_BIG: &str = r#"{
  "description": "a change over the limit is held, and the reason says by how much",
  "input": {
    "deployment": {"service": "checkout", "environment": "production", "version": "v2"},
    "change": {"lines_added": 700, "lines_removed": 100}
  },
  "settings": {"max_lines": 500},
  "expect": "hold",
  "reason_contains": "800 lines changed"
}
"#;
