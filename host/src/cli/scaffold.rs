//! `verdict policy new`: a policy crate (Rust) or project (Python,
//! TypeScript) that builds and passes its fixtures on the first try, so a
//! platform engineer starts from something green. All three templates make
//! the same policy (hold changes over `max_lines`) with the same fixtures.
//!
//! The project is self-contained: the SDK of its language is vendored from
//! the binary (see [`super::sdk`]) and referenced by a relative path, so it
//! builds on any machine with the language's toolchain, in or out of a
//! Verdict checkout.

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
pub fn new_policy_in(lang: Lang, dir: &Path) -> anyhow::Result<Created> {
    let name = check_new(dir)?;
    let ident = name.replace(['-', '.'], "_");
    let mut files: Vec<(PathBuf, String)> = match lang {
        Lang::Rust => vec![
            (dir.join("Cargo.toml"), cargo_toml(&name)),
            (dir.join("src/lib.rs"), lib_rs(&name, &type_name(&name))),
            (dir.join(".gitignore"), "/target\n/build\n".into()),
        ],
        Lang::Python => vec![
            (dir.join("pyproject.toml"), pyproject(&name)),
            (dir.join("app.py"), PY_APP.replace("{ident}", &ident)),
            (
                dir.join(format!("{ident}.py")),
                PY_POLICY.replace("{name}", &name),
            ),
            (
                dir.join(format!("tests/test_{ident}.py")),
                PY_TEST.replace("{ident}", &ident),
            ),
            (dir.join(".gitignore"), "/build\n__pycache__/\n".into()),
        ],
        // Imports of the SDK are relative, so they stay valid in tsc's
        // output, which mirrors the source tree.
        Lang::Js => vec![
            (dir.join("package.json"), package_json(&name)),
            (dir.join("tsconfig.json"), TSCONFIG.to_string()),
            (dir.join("src/policy.ts"), TS_ENTRY.to_string()),
            (dir.join("src/gate.ts"), TS_POLICY.replace("{name}", &name)),
            (dir.join("test/gate.test.ts"), TS_TEST.to_string()),
            (
                dir.join(".gitignore"),
                "/build\n/dist\n/vendor/verdict-sdk-js/generated\n".into(),
            ),
        ],
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
    let mut created: Vec<PathBuf> = files.into_iter().map(|(p, _)| p).collect();
    created.extend(super::sdk::vendor(dir, lang)?);
    Ok(Created { files: created })
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

fn pyproject(name: &str) -> String {
    format!(
        r#"# A Verdict policy in Python: `verdict policy build .` turns it into a
# component with componentize-py; `pytest` runs its logic and fixtures natively.
[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.10"

[tool.verdict]
app = "app"
sdk = "vendor/verdict-sdk-python"

[tool.pytest.ini_options]
pythonpath = [".", "vendor/verdict-sdk-python"]
testpaths = ["tests"]
"#
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

fn package_json(name: &str) -> String {
    format!(
        r#"{{
  "name": "{name}",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "verdict": {{ "entry": "src/policy.ts", "sdk": "vendor/verdict-sdk-js" }}
}}
"#
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
  "include": ["src/**/*.ts", "test/**/*.ts", "vendor/verdict-sdk-js/generated/**/*.d.ts", "vendor/verdict-sdk-js/node.d.ts"]
}
"#;

const TS_ENTRY: &str = r#"// Component entry point: componentize-js builds from the compiled form of
// this module. The policy itself is in gate.ts.
import { log } from "verdict:policy/host@0.1.0";
import { exportPolicy } from "../vendor/verdict-sdk-js/src/component.js";
import { Gate } from "./gate.js";

export const { describe, validateSettings, evaluate } = exportPolicy(new Gate(), log);
"#;

const TS_POLICY: &str = r#"// `{name}`: holds changes larger than `max_lines`, promotes the rest.
import { Input, Outcome, Policy, hold, info, parseSettings, promote, reason } from "../vendor/verdict-sdk-js/src/index.js";

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
import { verdictOf } from "../vendor/verdict-sdk-js/src/index.js";
import { fixtureInput } from "../vendor/verdict-sdk-js/src/testing.js";
import { Gate } from "../src/gate.js";

test("big changes hold", () => {
  const input = fixtureInput({ deployment: {}, change: { lines_added: 900 } });
  assert.equal(verdictOf(new Gate().evaluate(input)), "hold");
});
"#;

fn cargo_toml(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
# Vendored from the `verdict` binary; `verdict policy sdk update .` refreshes it.
verdict-sdk = {{ path = "vendor/verdict-sdk" }}
serde = {{ version = "1", features = ["derive"] }}

# A standalone workspace, so the crate builds wherever it lives.
[workspace]

# Optimised for speed, not size: a policy runs on every decision (the
# built-ins take 15-25% less fuel at opt-level 3 than at "s").
[profile.release]
opt-level = 3
lto = true
panic = "abort"
strip = true
codegen-units = 1
"#
    )
}

/// The policy's Rust type: `change-size` → `ChangeSize` (a leading digit
/// gets a `P`, since an identifier cannot start with one).
fn type_name(name: &str) -> String {
    let mut out: String = name
        .split(['-', '_', '.'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'P');
    }
    out
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

#[cfg(test)]
mod tests {
    use super::type_name;

    #[test]
    fn rust_type_names_are_upper_camel_case_identifiers() {
        assert_eq!(type_name("change-size"), "ChangeSize");
        assert_eq!(type_name("my_gate.v2"), "MyGateV2");
        assert_eq!(type_name("2fa-check"), "P2faCheck");
    }
}
