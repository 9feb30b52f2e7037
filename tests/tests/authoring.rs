//! A policy author's first hour, outside any Verdict checkout, with nothing
//! of Verdict but the `verdict` binary: scaffold a Rust, a Python and a
//! TypeScript policy, build each with the language's own toolchain, pass
//! their fixtures in the sandbox, push them to a running server, bind them
//! and decide. Then the binary's other author commands: `verdict wit`,
//! `verdict policy sdk update`, and a fixture that expects the wrong verdict
//! failing `policy test`.
//!
//! The binary is copied alone into a temporary directory and run from
//! there, so a lookup of the SDK or the WIT relative to the repository (or
//! to the binary's build directory) would fail this test. The language
//! toolchains (the wasm32 Rust toolchain, componentize-py, componentize-js
//! with jco and tsc) are the machine's: `make toolchain` installs them, the
//! Python and JS ones into the repository's `.toolchain/`, which
//! `VERDICT_TOOLCHAIN` points at as an author points it at their own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use verdict_e2e::{binary, policy_result, Options, Server};

/// One cargo target directory for the Rust policies both tests build, so
/// the standard library and the SDK's dependencies for wasm32 are built once.
fn cargo_target() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// A copy of the `verdict` binary alone, in a directory outside the repository.
fn lone_binary(tmp: &Path) -> PathBuf {
    assert!(
        !tmp.starts_with(repo()),
        "the temporary directory must be outside the repository"
    );
    std::fs::create_dir(tmp.join("bin")).unwrap();
    let bin = tmp.join("bin/verdict");
    std::fs::copy(binary(), &bin).unwrap();
    bin
}

struct Author {
    bin: PathBuf,
    work: PathBuf,
    toolchain: PathBuf,
    server: String,
}

impl Author {
    /// `verdict args…` in the work directory; (exit code, stdout + stderr).
    fn run(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(&self.bin)
            .args(args)
            .current_dir(&self.work)
            .env("VERDICT_TOOLCHAIN", &self.toolchain)
            .env("CARGO_TARGET_DIR", cargo_target())
            .env("VERDICT_SERVER", &self.server)
            .env_remove("VERDICT_TOKEN")
            .env_remove("VERDICT_CONFIG")
            .output()
            .expect("run the copied verdict binary");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let (code, out) = self.run(args);
        assert_eq!(code, 0, "verdict {}: {out}", args.join(" "));
        out
    }
}

fn request(service: &str, lines: u32) -> Value {
    json!({
        "deployment": {"service": service, "environment": "staging", "version": "v2"},
        "change": {"lines_added": lines, "lines_removed": 0, "ticket": "OPS-1"}
    })
}

#[test]
#[cfg_attr(verdict_skip_polyglot, ignore = "VERDICT_SKIP_POLYGLOT is set")]
fn scaffold_build_test_push_and_decide_in_three_languages_from_the_binary_alone() {
    let repo = repo();
    let tmp = tempfile::tempdir().unwrap();
    let bin = lone_binary(tmp.path());
    let work = tmp.path().join("policies-repo");
    std::fs::create_dir(&work).unwrap();

    let s = Server::start();
    let author = Author {
        bin,
        work: work.clone(),
        toolchain: repo.join(".toolchain"),
        server: s.base.clone(),
    };

    // The contract travels with the binary.
    let wit = author.ok(&["wit"]);
    assert_eq!(
        wit,
        std::fs::read_to_string(repo.join("wit/policy.wit")).unwrap()
    );
    author.ok(&["wit", "--out", "contract"]);
    assert_eq!(
        std::fs::read_to_string(work.join("contract/policy.wit")).unwrap(),
        wit
    );

    for (lang, project_file, vendored) in [
        ("rust", "Cargo.toml", "vendor/verdict-sdk/src/lib.rs"),
        (
            "python",
            "pyproject.toml",
            "vendor/verdict-sdk-python/verdict_sdk/__init__.py",
        ),
        ("js", "package.json", "vendor/verdict-sdk-js/src/index.ts"),
    ] {
        let dir = format!("gate-{lang}");
        let out = author.ok(&["policy", "new", "--lang", lang, &dir]);
        assert!(
            out.contains(&format!("created {dir}/{project_file}")),
            "{out}"
        );
        assert!(work.join(&dir).join(vendored).is_file(), "{out}");
        // Nothing in the project names a path outside it.
        let project = std::fs::read_to_string(work.join(&dir).join(project_file)).unwrap();
        assert!(
            !project.contains(&*repo.to_string_lossy()) && !project.contains("/tmp"),
            "{project}"
        );

        let wasm = work.join(format!("{dir}.wasm"));
        author.ok(&["policy", "build", &dir, "-o", wasm.to_str().unwrap()]);
        let out = author.ok(&[
            "policy",
            "test",
            wasm.to_str().unwrap(),
            &format!("{dir}/fixtures"),
        ]);
        assert!(out.ends_with("2 passed, 0 failed\n"), "{out}");

        let out = author.ok(&["policy", "push", &dir, wasm.to_str().unwrap()]);
        assert!(out.contains(&dir), "{out}");
        let (st, body) = s.json(
            "PUT",
            &format!("/v1/bindings/{dir}"),
            &json!({"policy": dir, "selector": {"service": "shop"},
                    "settings": {"max_lines": 300}}),
        );
        assert_eq!(st, 200, "{body}");

        // The vendored SDK is the binary's own: nothing to update.
        let out = author.ok(&["policy", "sdk", "update", &dir]);
        assert!(out.contains("no file changed"), "{out}");
    }

    // The three policies decide together, each with its binding's settings.
    let small = s.decide(&request("shop", 120));
    let big = s.decide(&request("shop", 450));
    assert_eq!(big["verdict"], "hold", "{big}");
    for lang in ["rust", "python", "js"] {
        let gate = format!("gate-{lang}");
        assert_eq!(
            policy_result(&small, &gate)["verdict"],
            "promote",
            "{small}"
        );
        let p = policy_result(&big, &gate);
        assert_eq!(p["verdict"], "hold", "{p}");
        assert!(
            p["reasons"][0]["message"]
                .as_str()
                .unwrap()
                .contains("450 lines changed (limit 300)"),
            "{p}"
        );
    }

    // A fixture that expects the wrong verdict fails `policy test`, by name.
    let big_fixture = work.join("gate-rust/fixtures/big-change-holds.json");
    let text = std::fs::read_to_string(&big_fixture).unwrap();
    std::fs::write(
        &big_fixture,
        text.replace(r#""expect": "hold""#, r#""expect": "promote""#),
    )
    .unwrap();
    let (code, out) = author.run(&[
        "policy",
        "test",
        work.join("gate-rust.wasm").to_str().unwrap(),
        "gate-rust/fixtures",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  big-change-holds.json: expected promote, got hold"),
        "{out}"
    );
    assert!(out.ends_with("1 passed, 1 failed\n"), "{out}");

    // An edit to the vendored SDK is never overwritten silently.
    let stats = work.join("gate-python/vendor/verdict-sdk-python/verdict_sdk/stats.py");
    std::fs::write(&stats, "# my local change\n").unwrap();
    let (code, out) = author.run(&["policy", "sdk", "update", "gate-python"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("verdict_sdk/stats.py") && out.contains("--force"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(&stats).unwrap(),
        "# my local change\n"
    );
}

/// Copy `from` to `to`, leaving out build output.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if [
            "build",
            "dist",
            "target",
            "generated",
            "__pycache__",
            ".pytest_cache",
        ]
        .contains(&name.to_str().unwrap())
        {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(&name));
        } else {
            std::fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}

/// `examples/policy-repo` as a team would use it: copied out of the
/// repository, its CI script run with only the `verdict` binary on PATH
/// (builds, unit tests, fixtures, then pushes with an admin token). Its
/// vendored SDKs are the binary's own: an SDK change without `verdict
/// policy sdk update examples/policy-repo/policies/<name>` fails here.
#[test]
#[cfg_attr(verdict_skip_polyglot, ignore = "VERDICT_SKIP_POLYGLOT is set")]
fn the_example_policy_repository_builds_tests_and_pushes_with_its_ci_script() {
    let repo = repo();
    let tmp = tempfile::tempdir().unwrap();
    let bin = lone_binary(tmp.path());
    let work = tmp.path().join("policy-repo");
    copy_tree(&repo.join("examples/policy-repo"), &work);

    // Pushing needs the admin role; the token is configured by its SHA-256.
    let token = "ci-admin-token";
    let s = Server::start_with(Options {
        config: Some(format!(
            "tokens = [{{ name = \"policy-ci\", sha256 = \"{}\", roles = [\"admin\", \"read\"] }}]\n",
            hex::encode(Sha256::digest(token))
        )),
        ..Options::default()
    });
    let author = Author {
        bin: bin.clone(),
        work: work.clone(),
        toolchain: repo.join(".toolchain"),
        server: s.base.clone(),
    };
    let names = ["business-hours", "change-size", "ticket-required"];
    for name in names {
        let out = author.ok(&["policy", "sdk", "update", &format!("policies/{name}")]);
        assert!(
            out.contains("no file changed"),
            "examples/policy-repo/policies/{name} vendors another SDK than the binary's: \
             run `verdict policy sdk update` on it\n{out}"
        );
    }

    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(work.join("ci.sh"))
        .current_dir(&work)
        .env("PATH", path)
        .env("PUSH", "1")
        .env("VERDICT_SERVER", &s.base)
        .env("VERDICT_TOKEN", token)
        .env("VERDICT_TOOLCHAIN", repo.join(".toolchain"))
        .env("PYTEST", repo.join(".toolchain/venv/bin/pytest"))
        .env("CARGO_TARGET_DIR", cargo_target())
        .env_remove("VERDICT_CONFIG")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ci.sh failed:\n{text}");
    for (name, fixtures) in [
        ("business-hours", 4),
        ("change-size", 2),
        ("ticket-required", 4),
    ] {
        assert!(
            text.contains(&format!("== {name}"))
                && text.contains(&format!("{fixtures} passed, 0 failed")),
            "{name}: {text}"
        );
        assert!(text.contains(&format!("pushed {name} ")), "{text}");
    }
    let listed = s.call_with("GET", "/v1/policies", None, Some(token), "application/json");
    for name in names {
        assert!(
            listed.1.to_string().contains(&format!("\"{name}\"")),
            "{listed:?}"
        );
    }
}
