//! A policy runs as itself and nothing else: a pin names a version of its
//! own policy, and a compiled artifact swapped in the cache is never loaded.
//! An upload cannot make the server compile without bounds, and only
//! accepted components reach the artifact cache. A component built against
//! an incompatible version of the WIT contract is refused at upload, naming
//! both versions and what to rebuild with.

use serde_json::{json, Value};
use verdict_e2e::{
    assert_error, dist_wasm, failing_request, misbehave_wasm, policy_result, Options, Server,
};

fn digest_of(s: &Server, policy: &str) -> String {
    s.get_ok(&format!("/v1/policies/{policy}"))["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

fn restart(dir: std::path::PathBuf) -> Server {
    Server::start_with(Options {
        data_dir: Some(dir),
        ..Options::default()
    })
}

#[test]
fn a_pin_to_another_policys_digest_is_refused() {
    let s = Server::start();
    let risk = digest_of(&s, "change-risk");
    let thresholds = digest_of(&s, "thresholds");
    let forged = format!("thresholds@{risk}");

    // As a binding: refused, naming both policies, and nothing is bound.
    let answer = s.json(
        "PUT",
        "/v1/bindings/sneaky",
        &json!({"policy": forged, "selector": {"service": "api"}}),
    );
    let message = assert_error(&answer, 422, "pin_mismatch");
    assert!(
        message.contains("`thresholds`") && message.contains("`change-risk`"),
        "{message}"
    );
    assert!(message.contains(&forged), "{message}");
    assert_eq!(s.call("GET", "/v1/bindings/sneaky", None).0, 404);

    // As a replay reference: refused the same way.
    let d = s.decide(&failing_request("api", "prod"));
    let path = format!("/v1/decisions/{}/replay", d["id"].as_str().unwrap());
    let answer = s.json("POST", &path, &json!({"policies": [forged]}));
    assert_error(&answer, 422, "pin_mismatch");

    // A pin to the name's own digest is fine.
    let (st, body) = s.json(
        "PUT",
        "/v1/bindings/pinned",
        &json!({"policy": format!("thresholds@{thresholds}"), "selector": {"service": "api"}}),
    );
    assert_eq!(st, 200, "{body}");

    // The check holds after a restart (the history of names is persisted).
    let (dir, _keep) = s.into_data_dir();
    let s = restart(dir);
    let answer = s.json(
        "PUT",
        "/v1/bindings/sneaky",
        &json!({"policy": forged, "selector": {"service": "api"}}),
    );
    assert_error(&answer, 422, "pin_mismatch");
    assert_eq!(
        s.get_ok("/v1/bindings/pinned")["binding"]["policy"],
        format!("thresholds@{thresholds}")
    );
}

/// What each binding said in a decision: (binding, verdict, abstained, reasons).
fn outcomes(d: &Value) -> Vec<(String, Value, Value, Vec<String>)> {
    d["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let reasons = p["reasons"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .map(|x| x["message"].as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default();
            (
                p["binding"].as_str().unwrap().to_string(),
                p["verdict"].clone(),
                p["abstained"].clone(),
                reasons,
            )
        })
        .collect()
}

/// The cache file of `digest` in the data dir's artifact cache.
fn cache_file(dir: &std::path::Path, digest: &str) -> std::path::PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let found: Vec<_> = std::fs::read_dir(dir.join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{hex}-"))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one cached artifact for {digest}: {found:?}"
    );
    found.into_iter().next().unwrap()
}

#[test]
fn swapped_cache_artifacts_are_never_loaded_as_the_other_policy() {
    let s = Server::start();
    let thresholds = digest_of(&s, "thresholds");
    let judge = digest_of(&s, "canary-judge");
    let request = failing_request("api", "prod");
    let before = s.decide(&request);
    assert_eq!(before["verdict"], "rollback", "{before}");
    let (dir, _keep) = s.into_data_dir();

    // Swap the two compiled artifacts on disk.
    let (a, b) = (cache_file(&dir, &thresholds), cache_file(&dir, &judge));
    let (bytes_a, bytes_b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_ne!(bytes_a, bytes_b);
    std::fs::write(&a, &bytes_b).unwrap();
    std::fs::write(&b, &bytes_a).unwrap();

    let s = Server::start_with(Options {
        data_dir: Some(dir.clone()),
        capture_stderr: true,
        ..Options::default()
    });
    // Each policy still decides as itself, under its own digest.
    let after = s.decide(&request);
    assert_eq!(after["verdict"], "rollback", "{after}");
    assert_eq!(outcomes(&after), outcomes(&before), "{after}");
    assert_eq!(
        policy_result(&after, "thresholds")["digest"],
        thresholds.as_str()
    );
    assert_eq!(
        policy_result(&after, "canary-judge")["digest"],
        judge.as_str()
    );
    // The mismatch was logged, and the entries recompiled and rewritten.
    let log = s.stderr_lines().join("\n");
    assert!(
        log.matches("failed verification").count() >= 2,
        "both swapped artifacts are reported: {log}"
    );
    assert_ne!(std::fs::read(&a).unwrap(), bytes_b, "rewritten");
    drop(s);
    let s = Server::start_with(Options {
        data_dir: Some(dir.clone()),
        capture_stderr: true,
        ..Options::default()
    });
    assert_eq!(outcomes(&s.decide(&request)), outcomes(&before));
    let log = s.stderr_lines().join("\n");
    assert!(
        !log.contains("failed verification"),
        "the rewritten entries verify: {log}"
    );

    // The artifact key is private to the server's user.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("artifact.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}

fn cached_files(s: &Server) -> Vec<String> {
    std::fs::read_dir(s.data_dir.join("cache"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_compile_over_its_limits_is_refused_and_the_server_lives_on() {
    // The defaults accept a normal component (and the built-ins, compiled
    // the same way at first start).
    let s = Server::start();
    let (st, body) = s.put_policy("misbehave", &misbehave_wasm());
    assert_eq!(st, 201, "{body}");
    drop(s);

    for (config, why) in [
        (
            "compile_memory_bytes = 2097152",
            "needed more than 2 MiB of memory",
        ),
        ("compile_timeout_ms = 1", "took longer than 1 ms"),
    ] {
        let s = Server::start_with(Options {
            config: Some(format!("builtin_policies = false\n{config}\n")),
            ..Options::default()
        });
        let answer = s.put_policy("misbehave", &misbehave_wasm());
        let message = assert_error(&answer, 422, "invalid_policy");
        assert!(
            message.contains("component too expensive to compile") && message.contains(why),
            "{config}: {message}"
        );
        // Refused, not registered, not cached; the server still answers.
        assert_eq!(s.call("GET", "/v1/policies/misbehave", None).0, 404);
        assert!(cached_files(&s).is_empty(), "{:?}", cached_files(&s));
        assert_eq!(s.call("GET", "/healthz", None).0, 200);
    }
}

#[test]
fn only_accepted_components_are_cached() {
    let s = Server::start_with(Options {
        config: Some("builtin_policies = false\n".into()),
        ..Options::default()
    });
    // Compiles, but its `describe` loops: rejected, so nothing is cached.
    let answer = s.put_policy("loops", &dist_wasm("test/describe-loop"));
    assert_error(&answer, 422, "invalid_policy");
    assert!(cached_files(&s).is_empty(), "{:?}", cached_files(&s));
    // An accepted one is.
    let (st, body) = s.put_policy("misbehave", &misbehave_wasm());
    assert_eq!(st, 201, "{body}");
    let hex = body["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string();
    let files = cached_files(&s);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].starts_with(&hex), "{files:?}");
}

/// `thresholds` as if built against another version of the contract: the
/// version strings in its import names rewritten (same length, so the
/// component stays well-formed and otherwise identical).
fn built_against(version: &str) -> Vec<u8> {
    assert_eq!(version.len(), "0.1.0".len());
    let mut bytes = dist_wasm("thresholds");
    let from = b"verdict:policy/types@0.1.0";
    let mut rewritten = 0;
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            let at = i + from.len() - version.len();
            bytes[at..at + version.len()].copy_from_slice(version.as_bytes());
            rewritten += 1;
        }
        i += 1;
    }
    assert!(rewritten > 0, "thresholds names verdict:policy/types@0.1.0");
    bytes
}

#[test]
fn a_component_built_against_an_incompatible_contract_is_refused_naming_both_versions() {
    let s = Server::start();
    for (version, advice) in [
        ("0.2.0", "upgrade Verdict"),
        ("1.0.0", "upgrade Verdict"),
        ("0.1.9", "upgrade Verdict"),
        ("0.0.9", "verdict policy sdk update"),
    ] {
        let message = assert_error(
            &s.put_policy("versioned", &built_against(version)),
            422,
            "invalid_policy",
        );
        assert!(
            message.contains(&format!("verdict:policy@{version}"))
                && message.contains("verdict:policy@0.1.0")
                && message.contains(advice),
            "{version}: {message}"
        );
    }
    // Nothing was stored under the name; the same component built against
    // this server's contract is accepted.
    let (status, _) = s.call("GET", "/v1/policies/versioned", None);
    assert_eq!(status, 404);
    let (status, body) = s.put_policy("versioned", &built_against("0.1.0"));
    assert!(status == 200 || status == 201, "{status} {body}");
}
