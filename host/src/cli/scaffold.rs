//! `verdict policy new`: a policy crate (Rust) or project (Python,
//! TypeScript) that builds and passes its fixtures on the first try, so a
//! platform engineer starts from something green. All three templates make
//! the same policy (hold changes over `max_lines`) with the same fixtures.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

pub struct Created {
    pub files: Vec<PathBuf>,
}

/// The languages `verdict policy new --lang` scaffolds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    /// TypeScript (compiled to JavaScript by the build).
    Js,
}

/// Create `dir` as a new policy in `lang`.
pub fn new_policy_in(lang: Lang, dir: &Path, sdk: Option<&Path>) -> anyhow::Result<Created> {
    match lang {
        Lang::Rust => new_policy(dir, sdk),
        Lang::Python | Lang::Js => new_interpreted(lang, dir, sdk),
    }
}

fn check_new(dir: &Path) -> anyhow::Result<String> {
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
    Ok(name)
}

fn new_interpreted(lang: Lang, dir: &Path, sdk: Option<&Path>) -> anyhow::Result<Created> {
    let name = check_new(dir)?;
    let sdk_name = if lang == Lang::Python {
        "sdk-python"
    } else {
        "sdk-js"
    };
    let sdk = match sdk {
        Some(p) => p.to_path_buf(),
        None => find_named_sdk(sdk_name).with_context(|| {
            format!("cannot find `policies/{sdk_name}` from here: pass --sdk <path>")
        })?,
    };
    let sdk = std::fs::canonicalize(&sdk)
        .with_context(|| format!("cannot open the SDK at `{}`", sdk.display()))?;
    let ident = name.replace(['-', '.'], "_");
    let mut files: Vec<(PathBuf, String)> = match lang {
        Lang::Python => vec![
            (dir.join("pyproject.toml"), pyproject(&name, &sdk)),
            (dir.join("app.py"), PY_APP.replace("{ident}", &ident)),
            (
                dir.join(format!("{ident}.py")),
                PY_POLICY.replace("{name}", &name),
            ),
            (
                dir.join(format!("tests/test_{ident}.py")),
                PY_TEST.replace("{ident}", &ident),
            ),
        ],
        _ => {
            // Imports of the SDK are relative, so they stay valid in tsc's
            // output, which mirrors the source tree.
            std::fs::create_dir_all(dir)?;
            let project = std::fs::canonicalize(dir)?;
            let from_src = relative(&project.join("src"), &sdk.join("src"));
            let from_test = relative(&project.join("test"), &sdk.join("src"));
            vec![
                (dir.join("package.json"), package_json(&name, &sdk)),
                (
                    dir.join("tsconfig.json"),
                    TSCONFIG.replace("{sdk}", &sdk.display().to_string()),
                ),
                (
                    dir.join("src/policy.ts"),
                    TS_ENTRY.replace("{sdk}", &from_src),
                ),
                (
                    dir.join("src/gate.ts"),
                    TS_POLICY
                        .replace("{sdk}", &from_src)
                        .replace("{name}", &name),
                ),
                (
                    dir.join("test/gate.test.ts"),
                    TS_TEST.replace("{sdk}", &from_test),
                ),
            ]
        }
    };
    files.push((
        dir.join("fixtures/small-change-promotes.json"),
        FIXTURE_OK.to_string(),
    ));
    files.push((
        dir.join("fixtures/big-change-holds.json"),
        FIXTURE_BIG.to_string(),
    ));
    for (path, text) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, text).with_context(|| format!("writing `{}`", path.display()))?;
    }
    Ok(Created {
        files: files.into_iter().map(|(p, _)| p).collect(),
    })
}

/// `to` relative to the directory `from` (both absolute), with `/`.
fn relative(from: &Path, to: &Path) -> String {
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".into(); f.len() - common];
    parts.extend(
        t[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

fn find_named_sdk(name: &str) -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .flat_map(|d| [d.join("policies").join(name), d.join(name)])
        .find(|p| p.is_dir())
}

fn pyproject(name: &str, sdk: &Path) -> String {
    format!(
        r#"# A Verdict policy in Python: `verdict policy build .` turns it into a
# component with componentize-py; `pytest` runs its logic and fixtures natively.
[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.10"

[tool.verdict]
app = "app"
sdk = "{sdk}"

[tool.pytest.ini_options]
pythonpath = [".", "{sdk}"]
testpaths = ["tests"]
"#,
        sdk = sdk.display()
    )
}

const PY_APP: &str = r#""""Component entry point (componentize-py builds from this module)."""
from verdict_sdk.component import export

from {ident} import Policy

WitWorld = export(Policy())
"#;

const PY_POLICY: &str = r#""""`{name}`: holds changes larger than `max_lines`, promotes the rest."""
from dataclasses import dataclass

from verdict_sdk import Info, Input, Outcome, Reason, parse_settings


@dataclass
class Settings:
    max_lines: int = 500


class Policy:
    def describe(self) -> Info:
        return Info("{name}", "0.1.0", "holds large changes").with_default_settings(Settings())

    def validate_settings(self, settings: str) -> None:
        parse_settings(settings, Settings)

    def evaluate(self, input: Input) -> Outcome:
        s = parse_settings(input.settings, Settings)
        lines = input.change.lines_added + input.change.lines_removed
        reason = Reason(f"{lines} lines changed (limit {s.max_lines})").on_metric(
            "lines_changed", lines, s.max_lines)
        if lines > s.max_lines:
            return Outcome.hold([reason])
        return Outcome.promote([reason])
"#;

const PY_TEST: &str = r#"from pathlib import Path

from verdict_sdk import Input, Verdict
from verdict_sdk.testing import run_fixtures

from {ident} import Policy


def test_big_changes_hold():
    i = Input()
    i.change.lines_added = 900
    assert Policy().evaluate(i).verdict is Verdict.HOLD


def test_fixtures_pass_natively():
    count, failures = run_fixtures(Policy(), Path(__file__).parent.parent / "fixtures")
    assert count == 2 and failures == []
"#;

fn package_json(name: &str, sdk: &Path) -> String {
    format!(
        r#"{{
  "name": "{name}",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "verdict": {{ "entry": "src/policy.ts", "sdk": "{sdk}" }}
}}
"#,
        sdk = sdk.display()
    )
}

const TSCONFIG: &str = r#"{
  "compilerOptions": {
    "target": "es2022",
    "module": "es2022",
    "moduleResolution": "bundler",
    "strict": true,
    "outDir": "dist",
    "types": [],
    "skipLibCheck": true
  },
  "include": ["src/**/*.ts", "test/**/*.ts", "{sdk}/generated/**/*.d.ts", "{sdk}/node.d.ts"]
}
"#;

const TS_ENTRY: &str = r#"// Component entry point: componentize-js builds from the compiled form of
// this module. The policy itself is in gate.ts.
import { log } from "verdict:policy/host@0.1.0";
import { exportPolicy } from "{sdk}/component.js";
import { Gate } from "./gate.js";

export const { describe, validateSettings, evaluate } = exportPolicy(new Gate(), log);
"#;

const TS_POLICY: &str = r#"// `{name}`: holds changes larger than `max_lines`, promotes the rest.
import { Input, Outcome, Policy, hold, info, parseSettings, promote, reason } from "{sdk}/index.js";

const DEFAULTS = { max_lines: 500 };

export class Gate implements Policy {
  describe() {
    return info("{name}", "0.1.0", "holds large changes", { defaults: DEFAULTS });
  }

  validateSettings(settings: string): void {
    parseSettings(settings, DEFAULTS);
  }

  evaluate(input: Input): Outcome {
    const s = parseSettings(input.settings, DEFAULTS);
    const lines = input.change.linesAdded + input.change.linesRemoved;
    const r = reason(`${lines} lines changed (limit ${s.max_lines})`, {
      metric: "lines_changed",
      observed: lines,
      threshold: s.max_lines,
    });
    return lines > s.max_lines ? hold([r]) : promote([r]);
  }
}
"#;

const TS_TEST: &str = r#"// Compiled by `verdict policy build .`; run with `node --test` on its output.
import { test } from "node:test";
import assert from "node:assert/strict";
import { verdictOf } from "{sdk}/index.js";
import { fixtureInput } from "{sdk}/testing.js";
import { Gate } from "../src/gate.js";

test("big changes hold", () => {
  const input = fixtureInput({ deployment: {}, change: { lines_added: 900 } });
  assert.equal(verdictOf(new Gate().evaluate(input)), "hold");
});
"#;

/// Create `dir` as a new policy crate named after its last path component.
pub fn new_policy(dir: &Path, sdk: Option<&Path>) -> anyhow::Result<Created> {
    let name = check_new(dir)?;
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
