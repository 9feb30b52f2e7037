//! Under load, a host-side shortage is never a policy's vote: a burst of
//! concurrent decisions records no policy error, a looping policy bound to
//! one service does not starve another, and when the evaluation queue cannot
//! serve a request within its deadline the answer is a 503 `overloaded`
//! with nothing stored.
//!
//! The timings below are generous on purpose (this runs on small, shared CI
//! machines): no assertion depends on how fast a decision is, only on what
//! was answered and stored.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use verdict_e2e::{assert_error, call, healthy_request, misbehave_wasm, Options, Server};

const BUILTINS: [&str; 5] = [
    "canary-judge",
    "change-risk",
    "error-budget",
    "freeze-window",
    "thresholds",
];

/// Upload `misbehave` and bind it in `mode` "loop" to `service`, looping
/// until its `timeout_ms` deadline (fuel high enough never to run out first).
fn bind_loop(s: &Server, binding: &str, service: &str, mode: &str, timeout_ms: u64) {
    let (st, body) = s.put_policy("misbehave", &misbehave_wasm());
    assert_eq!(st, 201, "upload misbehave: {body}");
    let (st, body) = s.json(
        "PUT",
        &format!("/v1/bindings/{binding}"),
        &json!({
            "policy": "misbehave",
            "selector": {"service": service},
            "mode": mode,
            "settings": {"mode": "loop"},
            "limits": {"fuel": 1_000_000_000_000_000u64, "timeout_ms": timeout_ms},
        }),
    );
    assert_eq!(st, 200, "bind the looping policy: {body}");
}

/// The sum of every `verdict_policy_errors_total` series on `/metrics`.
fn policy_errors(s: &Server) -> f64 {
    let (st, body) = s.call("GET", "/metrics", None);
    assert_eq!(st, 200, "GET /metrics: {body}");
    let text = body.as_str().expect("/metrics is text");
    text.lines()
        .filter(|l| l.starts_with("verdict_policy_errors_total"))
        .map(|l| {
            l.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("unparsable sample `{l}`"))
        })
        .sum()
}

/// Every stored decision, newest first (all pages).
fn stored_decisions(s: &Server) -> Vec<Value> {
    let mut out = Vec::new();
    let mut path = "/v1/decisions?limit=1000".to_string();
    loop {
        let page = s.get_ok(&path);
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/decisions?limit=1000&cursor={c}"),
            None => return out,
        }
    }
}

/// Decisions whose record carries a policy error, as `id: binding: message`.
fn recorded_policy_errors(decisions: &[Value]) -> Vec<String> {
    decisions
        .iter()
        .flat_map(|d| {
            d["policies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| !p["error"].is_null())
                .map(move |p| format!("{}: {}: {}", d["id"], p["binding"], p["error"]))
        })
        .collect()
}

/// Runs `threads` clients, each posting `request(thread)` to `path` until
/// `stop` is set; returns every (status, body) answered.
fn clients(
    s: &Server,
    threads: usize,
    stop: &Arc<AtomicBool>,
    pause: Duration,
    request: impl Fn(usize) -> Value + Send + Sync + 'static,
) -> Vec<std::thread::JoinHandle<Vec<(u16, Value)>>> {
    let request = Arc::new(request);
    (0..threads)
        .map(|t| {
            let (base, stop, request) = (s.base.clone(), stop.clone(), request.clone());
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let body = request(t).to_string();
                    let answer = call(
                        &base,
                        "POST",
                        "/v1/decisions",
                        Some(body.as_bytes()),
                        None,
                        "application/json",
                    );
                    answers.push(answer);
                    std::thread::sleep(pause);
                }
                answers
            })
        })
        .collect()
}

fn run_for(
    handles: Vec<std::thread::JoinHandle<Vec<(u16, Value)>>>,
    stop: &Arc<AtomicBool>,
    how_long: Duration,
) -> Vec<(u16, Value)> {
    std::thread::sleep(how_long);
    stop.store(true, Ordering::Relaxed);
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("client thread"))
        .collect()
}

#[test]
fn a_burst_of_concurrent_decisions_records_no_policy_error() {
    // Without a flush per decision, and with every built-in bound four
    // times, nearly all of a decision's time is spent in the sandbox: the
    // burst keeps every evaluation slot busy.
    let s = Server::start_with(Options {
        config: Some("flush = false\n".into()),
        ..Options::default()
    });
    for copy in 1..=3 {
        for policy in BUILTINS {
            let (st, body) = s.json(
                "PUT",
                &format!("/v1/bindings/{policy}-{copy}"),
                &json!({"policy": policy}),
            );
            assert_eq!(st, 200, "{body}");
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let handles = clients(&s, 128, &stop, Duration::ZERO, |t| {
        healthy_request(&format!("burst-{}", t % 8), "prod")
    });
    let answers = run_for(handles, &stop, Duration::from_secs(8));
    assert!(answers.len() >= 128, "every client was answered");
    let refused: Vec<_> = answers.iter().filter(|(st, _)| *st != 201).collect();
    assert!(
        refused.is_empty(),
        "{} of {} answers were not 201, e.g. {:?}",
        refused.len(),
        answers.len(),
        refused.first()
    );
    for (_, d) in &answers {
        assert_eq!(d["verdict"], "promote", "a healthy canary promotes: {d}");
    }
    let decisions = stored_decisions(&s);
    assert_eq!(decisions.len(), answers.len(), "one record per answer");
    let errors = recorded_policy_errors(&decisions);
    assert!(
        errors.is_empty(),
        "{} policy errors recorded, e.g. {:?}",
        errors.len(),
        &errors[..errors.len().min(3)]
    );
    assert_eq!(policy_errors(&s), 0.0, "verdict_policy_errors_total");
}

#[test]
fn a_looping_shadow_policy_on_one_service_does_not_starve_another() {
    // Four evaluation slots, so one policy may hold at most two of them.
    let s = Server::start_with(Options {
        config: Some("max_concurrent_evaluations = 4\nrequest_timeout_ms = 5000\n".into()),
        ..Options::default()
    });
    // Every decision for `noisy` runs a shadow policy that loops to its
    // 10 s deadline: longer than the request timeout.
    bind_loop(&s, "a-noisy-loop", "noisy", "shadow", 10_000);

    let stop = Arc::new(AtomicBool::new(false));
    // More noisy clients than the old pool had slots (64).
    let noisy = clients(&s, 72, &stop, Duration::from_millis(200), |_| {
        healthy_request("noisy", "prod")
    });
    // Let the loops take their slots before the quiet service asks.
    std::thread::sleep(Duration::from_secs(1));
    let quiet_stop = Arc::new(AtomicBool::new(false));
    let quiet = clients(&s, 4, &quiet_stop, Duration::ZERO, |t| {
        healthy_request(&format!("quiet-{t}"), "prod")
    });
    let quiet = run_for(quiet, &quiet_stop, Duration::from_secs(8));
    let noisy = run_for(noisy, &stop, Duration::ZERO);

    assert!(!quiet.is_empty());
    for (st, d) in &quiet {
        assert_eq!(*st, 201, "the quiet service is answered: {d}");
        assert_eq!(d["verdict"], "promote", "{d}");
        for p in d["policies"].as_array().unwrap() {
            assert!(p["error"].is_null(), "no policy error for quiet: {p}");
        }
    }
    // The noisy service's own decisions cannot finish within the request
    // timeout; they are refused as overloaded or timed out, never stored
    // with a policy error.
    for (st, d) in &noisy {
        assert!(
            *st == 201 || *st == 503,
            "noisy: unexpected answer {st}: {d}"
        );
        if *st == 503 {
            let code = d["error"]["code"].as_str().unwrap_or_default();
            assert!(code == "overloaded" || code == "timeout", "{d}");
        }
    }
    let errors = recorded_policy_errors(&stored_decisions(&s));
    assert!(errors.is_empty(), "policy errors recorded: {errors:?}");
}

#[test]
fn an_exhausted_evaluation_queue_answers_503_and_stores_nothing() {
    let s = Server::start_with(Options {
        config: Some("max_concurrent_evaluations = 1\nrequest_timeout_ms = 2000\n".into()),
        ..Options::default()
    });
    // The only slot is held for 10 s by a policy bound to `hog`.
    bind_loop(&s, "a-hog-loop", "hog", "enforce", 10_000);
    let started = Instant::now();
    let hog = {
        let (base, body) = (s.base.clone(), healthy_request("hog", "prod").to_string());
        std::thread::spawn(move || {
            call(
                &base,
                "POST",
                "/v1/decisions",
                Some(body.as_bytes()),
                None,
                "application/json",
            )
        })
    };
    let answer = hog.join().unwrap();
    assert_error(&answer, 503, "timeout");

    // Another service's request cannot get the slot before its deadline.
    let answer = s.json("POST", "/v1/decisions", &healthy_request("other", "prod"));
    let message = assert_error(&answer, 503, "overloaded");
    assert!(message.contains("overloaded"), "{message}");
    // The Argo door answers 200 whatever happens: a hold that decided nothing.
    let (st, a) = s.json(
        "POST",
        "/v1/integrations/argo",
        &healthy_request("other", "prod"),
    );
    assert_eq!(st, 200, "{a}");
    assert_eq!(
        (&a["verdict"], &a["decision_id"]),
        (&json!("hold"), &Value::Null),
        "{a}"
    );
    assert!(
        a["reasons"][0]
            .as_str()
            .is_some_and(|m| m.contains("overloaded")),
        "{a}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "the hog's loop must still hold the slot here; this machine is too slow for this test"
    );
    assert!(stored_decisions(&s).is_empty(), "nothing was stored");
    assert_eq!(policy_errors(&s), 0.0, "no policy was blamed");

    // Once the loop hits its deadline the slot is free again.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (st, d) = s.json("POST", "/v1/decisions", &healthy_request("other", "prod"));
        if st == 201 {
            assert_eq!(d["verdict"], "promote", "{d}");
            break;
        }
        assert_error(&(st, d), 503, "overloaded");
        assert!(Instant::now() < deadline, "the slot never came back");
    }
    assert_eq!(stored_decisions(&s).len(), 1);
}
