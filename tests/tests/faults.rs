//! Crash and disk faults: a first start cut short never leaves a partial
//! set of built-ins behind, and a full disk makes the server unready and
//! exit (so its supervisor restarts it) instead of staying "ready" while
//! every write fails; once space returns, a restart recovers with every
//! acknowledged decision intact and the chain verified.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use verdict::builtin::{default_binding, BUILTINS};
use verdict_e2e::{failing_request, healthy_request, Options, Server};

fn start_on(dir: &Path) -> Server {
    Server::start_with(Options {
        data_dir: Some(dir.to_path_buf()),
        ..Options::default()
    })
}

fn names(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {list}"))
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn all_builtins() -> Vec<String> {
    let mut v: Vec<String> = BUILTINS.iter().map(|b| b.name.to_string()).collect();
    v.sort();
    v
}

/// What a kill -9 between built-in installs used to leave: three of the
/// five policies and bindings. The next start completes the set, so a 5 %
/// error canary (judged by `thresholds`, one of the missing two) rolls back.
#[test]
fn a_first_start_cut_short_is_completed_on_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    {
        let store = verdict::store::Store::open(&dir.join("store")).unwrap();
        let engine = verdict::engine::Engine::new(None).unwrap();
        let now = jiff::Timestamp::now();
        for b in BUILTINS
            .iter()
            .filter(|b| b.name != "thresholds" && b.name != "change-risk")
        {
            let compiled = engine.compile(b.name, b.component).unwrap();
            store
                .put_policy(&compiled.meta(b.name, now), b.component)
                .unwrap();
            store.put_binding(b.name, &default_binding(b.name)).unwrap();
        }
    }
    let s = start_on(&dir);
    assert_eq!(names(&s.get_ok("/v1/policies")), all_builtins());
    assert_eq!(names(&s.get_ok("/v1/bindings")), all_builtins());
    let d = s.decide(&failing_request("api", "prod"));
    assert_eq!(d["verdict"], "rollback", "{d}");
}

/// Once installed, what an operator removes stays removed across restarts.
#[test]
fn a_removed_builtin_is_not_reinstalled() {
    let s = Server::start();
    assert_eq!(s.call("DELETE", "/v1/bindings/thresholds", None).0, 200);
    assert_eq!(s.call("DELETE", "/v1/policies/thresholds", None).0, 200);
    let (dir, _keep) = s.into_data_dir();
    let s = start_on(&dir);
    let mut want = all_builtins();
    want.retain(|n| n != "thresholds");
    assert_eq!(names(&s.get_ok("/v1/policies")), want);
    assert_eq!(names(&s.get_ok("/v1/bindings")), want);
}

/// A small tmpfs, so "disk full" is a real ENOSPC. Needs root (CI and
/// `make test` run as root); unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill the disk for real and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `path` until a write fails.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
}

#[test]
fn a_full_disk_makes_the_server_unready_and_exit_and_a_restart_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    let _fs = Tmpfs::mount(&mnt, "96m");
    let dir = mnt.join("data");
    let mut s = start_on(&dir);
    let mut acked: Vec<String> = (0..5)
        .map(|_| {
            s.decide(&healthy_request("api", "prod"))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();

    let filler = mnt.join("filler");
    fill(&filler);
    // Decide until a write fails; every 201 is acknowledged and must survive.
    let mut failure = None;
    for _ in 0..5_000 {
        let answer = verdict_e2e::try_call(
            &s.base,
            "POST",
            "/v1/decisions",
            Some(healthy_request("api", "prod").to_string().as_bytes()),
            None,
            "application/json",
        );
        match answer {
            Ok((201, d)) => acked.push(d["id"].as_str().unwrap().to_string()),
            Ok(other) => {
                failure = Some(other);
                break;
            }
            // The server may already be on its way out.
            Err(e) => {
                failure = Some((0, Value::String(e)));
                break;
            }
        }
    }
    let (status, body) = failure.expect("a full disk must make a write fail");
    if status != 0 {
        assert_eq!(
            status, 503,
            "a failed store is unavailable, not a policy vote: {body}"
        );
        assert_eq!(body["error"]["code"], "store_failed", "{body}");
    }
    // Unready (if it still answers), then gone without being asked to stop.
    if let Ok((code, ready)) = verdict_e2e::try_call(&s.base, "GET", "/readyz", None, None, "") {
        if code != 0 {
            assert_eq!(code, 503, "{ready}");
            assert_eq!(ready["ready"], false, "{ready}");
            assert!(ready["store_failure"].is_string(), "{ready}");
        }
    }
    let status = s.wait_exit(Duration::from_secs(60));
    assert!(
        !status.success(),
        "a failed store exits non-zero: {status:?}"
    );

    // Space returns; the supervisor restarts verdict on the same data dir.
    std::fs::remove_file(&filler).unwrap();
    let (_, _keep) = s.into_data_dir();
    let s = start_on(&dir);
    let report = s.get_ok("/v1/audit/verify");
    assert_eq!(report["ok"], true, "{report}");
    assert!(
        report["checked"].as_u64().unwrap() >= acked.len() as u64,
        "{report}"
    );
    for id in &acked {
        s.get_ok(&format!("/v1/decisions/{id}"));
    }
    let started = Instant::now();
    let d = s.decide(&healthy_request("api", "prod"));
    assert_eq!(d["verdict"], "promote", "{d}");
    eprintln!(
        "recovered; first decision after restart in {:?}",
        started.elapsed()
    );
    assert_eq!(s.get_ok("/readyz")["ready"], true);
}
