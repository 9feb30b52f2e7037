//! Signed checkpoints against the real binary: the server signs the chain's
//! head as decisions come in, serves the latest one and its verifier key,
//! and `verdict audit verify --checkpoint` proves the chain still holds the
//! checkpointed prefix. Each way of rewriting history that the hash chain
//! alone cannot see (a cut tail, an edit with every later hash recomputed,
//! a record removed and the rest re-chained) passes plain `verify` and is
//! caught with a checkpoint taken before it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use verdict::store::Store;
use verdict_e2e::{failing_request, healthy_request, Options, Server};

/// A checkpoint after every decision, so the test need not wait.
const CONFIG: &str = "audit_origin = \"verdict.test/prod\"\ncheckpoint_every = 1\n";

fn start(data_dir: Option<PathBuf>) -> Server {
    Server::start_with(Options {
        data_dir,
        config: Some(CONFIG.into()),
        capture_stderr: true,
        env: vec![("RUST_LOG".into(), "info".into())],
        ..Options::default()
    })
}

fn text(s: &Server, path: &str) -> String {
    let (status, body) = s.call("GET", path, None);
    assert_eq!(status, 200, "GET {path}: {body}");
    body.as_str().expect("a text answer").to_string()
}

/// The latest checkpoint, once it covers `size` records.
fn checkpoint_of(s: &Server, size: u64) -> String {
    let started = Instant::now();
    loop {
        let note = text(s, "/v1/audit/checkpoint");
        if note.lines().nth(1) == Some(size.to_string().as_str()) {
            return note;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no checkpoint of size {size}; latest:\n{note}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What an attacker finds and what the verifier kept.
struct Scene {
    /// The stopped server's data dir.
    dir: PathBuf,
    /// Owns `dir` and `saved`.
    _temps: (Option<tempfile::TempDir>, tempfile::TempDir),
    /// The checkpoint of the three decisions, saved outside the data dir.
    saved: PathBuf,
    /// The verifier key, kept with it.
    key: String,
    decisions: Vec<Value>,
}

/// Three decisions, the checkpoint of all three and the verifier key saved
/// outside the data dir; then the server is gone, as for an attacker
/// working on its disk.
fn three_decisions_checkpointed() -> Scene {
    let s = start(None);
    let decisions = vec![
        s.decide(&healthy_request("api", "prod")),
        s.decide(&failing_request("api", "prod")),
        s.decide(&healthy_request("api", "prod")),
    ];
    let note = checkpoint_of(&s, 3);
    let key = text(&s, "/v1/audit/key").trim().to_string();
    let outside = tempfile::tempdir().unwrap();
    let saved = outside.path().join("checkpoint.txt");
    std::fs::write(&saved, &note).unwrap();
    let (dir, owner) = s.into_data_dir();
    Scene {
        dir,
        _temps: (owner, outside),
        saved,
        key,
        decisions,
    }
}

fn verify(s: &Server, checkpoint: Option<&Path>, key: &str) -> (i32, Value) {
    let mut args = vec!["audit", "verify"];
    let path;
    if let Some(cp) = checkpoint {
        path = cp.display().to_string();
        args.extend(["--checkpoint", path.as_str(), "--key", key]);
    }
    let (code, out, err) = s.cli_env(&args, &[]);
    let report: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}{err}"));
    (code, report)
}

/// `verify --checkpoint` exits 1 with a problem that says `why`.
#[track_caller]
fn assert_checkpoint_fails(s: &Server, saved: &Path, key: &str, why: &str) {
    let (code, report) = verify(s, Some(saved), key);
    assert_eq!(code, 1, "{report}");
    let problem = report["checkpoint"]["problem"].as_str().unwrap();
    assert!(problem.contains(why), "{problem}");
}

fn open_store(dir: &Path) -> Store {
    Store::open(&dir.join("store")).expect("open the stopped server's store")
}

#[test]
fn checkpoints_are_signed_served_logged_and_verify() {
    let s = start(None);
    // One at start, of the empty chain.
    let first = checkpoint_of(&s, 0);
    assert!(first.starts_with("verdict.test/prod\n0\n"), "{first}");
    s.decide(&healthy_request("api", "prod"));
    s.decide(&healthy_request("api", "prod"));
    let note = checkpoint_of(&s, 2);
    let head = s.get_ok("/v1/decisions/dec-000000000002")["hash"].clone();
    let key = text(&s, "/v1/audit/key").trim().to_string();
    assert!(key.starts_with("verdict.test/prod+"), "{key}");
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("cp.txt");
    std::fs::write(&saved, &note).unwrap();
    let (code, report) = verify(&s, Some(&saved), &key);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["checkpoint"]["ok"], true, "{report}");
    assert_eq!(report["checkpoint"]["size"], 2, "{report}");
    assert_eq!(report["checkpoint"]["hash"], head, "{report}");
    // A checkpoint is logged, so whatever keeps the logs keeps a copy.
    assert!(
        s.stderr_lines()
            .iter()
            .any(|l| l.contains("signed audit checkpoint") && l.contains("verdict.test/prod")),
        "no checkpoint in the log"
    );
    // A changed checkpoint does not verify.
    std::fs::write(&saved, note.replacen("\n2\n", "\n1\n", 1)).unwrap();
    assert_checkpoint_fails(&s, &saved, &key, "does not verify");
}

#[test]
fn a_cut_tail_passes_verify_but_not_the_checkpoint() {
    let Scene {
        dir,
        _temps,
        saved,
        key,
        ..
    } = three_decisions_checkpointed();
    open_store(&dir).truncate_for_tests(2).unwrap();
    let s = start(Some(dir));
    let (code, report) = verify(&s, None, &key);
    assert_eq!(
        code, 0,
        "without a checkpoint the cut is invisible: {report}"
    );
    assert_eq!(report["checked"], 2);
    assert_checkpoint_fails(
        &s,
        &saved,
        &key,
        "has 2 records but the checkpoint covers 3",
    );
}

#[test]
fn a_rewrite_with_recomputed_hashes_passes_verify_but_not_the_checkpoint() {
    let Scene {
        dir,
        _temps,
        saved,
        key,
        decisions,
    } = three_decisions_checkpointed();
    open_store(&dir)
        .rechain_for_tests(2, |r| {
            r.replace(
                r#""seq":2,"verdict":"rollback""#,
                r#""seq":2,"verdict":"promote""#,
            )
        })
        .unwrap();
    let s = start(Some(dir));
    assert_eq!(
        s.get_ok("/v1/decisions/dec-000000000002")["verdict"],
        "promote"
    );
    let (code, report) = verify(&s, None, &key);
    assert_eq!(
        code, 0,
        "without a checkpoint the rewrite is invisible: {report}"
    );
    let kept = decisions[2]["hash"].as_str().unwrap();
    assert_checkpoint_fails(&s, &saved, &key, "record 3 (dec-000000000003) has hash");
    assert_checkpoint_fails(&s, &saved, &key, &format!("the checkpoint says `{kept}`"));
}

#[test]
fn a_removed_record_with_the_rest_rechained_passes_verify_but_not_the_checkpoint() {
    let Scene {
        dir,
        _temps,
        saved,
        key,
        ..
    } = three_decisions_checkpointed();
    let s = {
        open_store(&dir).remove_and_rechain_for_tests(2).unwrap();
        start(Some(dir))
    };
    // The rollback is gone; what was record 3 is now record 2.
    let (code, report) = verify(&s, None, &key);
    assert_eq!(
        code, 0,
        "without a checkpoint the removal is invisible: {report}"
    );
    assert_eq!(report["checked"], 2);
    assert_ne!(
        s.get_ok("/v1/decisions/dec-000000000002")["verdict"],
        "rollback"
    );
    assert_checkpoint_fails(
        &s,
        &saved,
        &key,
        "has 2 records but the checkpoint covers 3",
    );
}

#[test]
fn a_checkpoint_signed_by_another_key_is_refused() {
    let Scene {
        dir, _temps, saved, ..
    } = three_decisions_checkpointed();
    // The attacker also replaced the signing key and re-signed: the key
    // the verifier kept does not accept the server's new key, and the
    // kept checkpoint no longer matches the server's key either.
    std::fs::remove_file(dir.join("checkpoint.key")).unwrap();
    let s = start(Some(dir));
    let new_key = text(&s, "/v1/audit/key").trim().to_string();
    assert_checkpoint_fails(&s, &saved, &new_key, "no signature by key");
}

#[test]
fn an_export_carries_its_checkpoint_and_verifies_offline() {
    let s = start(None);
    s.decide(&healthy_request("api", "prod"));
    s.decide(&failing_request("api", "prod"));
    s.decide(&healthy_request("api", "prod"));
    checkpoint_of(&s, 3);
    let key = text(&s, "/v1/audit/key").trim().to_string();
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("audit.jsonl");
    let export_arg = export.display().to_string();
    let (code, out) = s.cli(&["audit", "export", "--out", &export_arg]);
    assert_eq!(code, 0, "{out}");
    let checkpoint = dir.path().join("audit.jsonl.checkpoint");
    let checkpoint_arg = checkpoint.display().to_string();
    assert!(std::fs::read_to_string(&checkpoint)
        .unwrap()
        .starts_with("verdict.test/prod\n3\n"));
    let offline = |export: &str| {
        // No server: an unreachable address proves nothing is asked of one.
        let out = std::process::Command::new(verdict_e2e::binary())
            .args(["audit", "verify", "--export", export])
            .args(["--checkpoint", &checkpoint_arg, "--key", &key])
            .env("VERDICT_SERVER", "http://127.0.0.1:9")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let report: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{e}: {text}{}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), report)
    };
    let (code, report) = offline(&export_arg);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["checked"], 3, "{report}");
    assert_eq!(report["checkpoint"]["ok"], true, "{report}");

    // An edited line breaks the chain; a dropped last line, the checkpoint.
    let lines: Vec<String> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let edited = dir.path().join("edited.jsonl");
    let mut changed = lines.clone();
    changed[1] = changed[1].replacen(r#""verdict":"rollback""#, r#""verdict":"promote""#, 1);
    assert_ne!(changed[1], lines[1]);
    std::fs::write(&edited, changed.join("\n") + "\n").unwrap();
    let (code, report) = offline(&edited.display().to_string());
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["broken"]["seq"], 2, "{report}");
    let cut = dir.path().join("cut.jsonl");
    std::fs::write(&cut, lines[..2].join("\n") + "\n").unwrap();
    let (code, report) = offline(&cut.display().to_string());
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["ok"], true, "{report}");
    let problem = report["checkpoint"]["problem"].as_str().unwrap();
    assert!(
        problem.contains("has 2 records but the checkpoint covers 3"),
        "{problem}"
    );
}
