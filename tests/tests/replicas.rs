//! Several replicas on one PostgreSQL: one audit chain, one active set,
//! idempotency across replicas, and what happens when a replica or the
//! database goes away. Every test starts its own throw-away cluster
//! (`verdict_e2e::postgres`) and real `verdict serve` processes on it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use verdict_e2e::postgres::Postgres;
use verdict_e2e::{
    assert_error, binary, dist_wasm, failing_request, healthy_request, try_call, Options, Server,
};

/// A replica on the database `url`, with its own data dir.
fn replica(url: &str) -> Server {
    Server::start_with(Options {
        env: vec![("VERDICT_STORE".into(), url.into())],
        ..Options::default()
    })
}

/// (id, verdict, hash) of every decision answered 201.
type Acks = Arc<Mutex<Vec<(String, String, String)>>>;

/// One answer a load client got that was not 201.
#[derive(Debug, Clone)]
struct Refusal {
    status: Option<u16>,
    body: String,
}

struct Load {
    acks: Acks,
    refusals: Arc<Mutex<Vec<Refusal>>>,
    /// 201 answers per replica (index into the `bases` given to [`load`]).
    per_replica: Arc<Vec<AtomicUsize>>,
    stop: Arc<AtomicBool>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn acked(&self) -> usize {
        self.acks.lock().unwrap().len()
    }

    fn acked_on(&self, replica: usize) -> usize {
        self.per_replica[replica].load(Ordering::Relaxed)
    }

    fn wait_for(&self, what: &str, mut done: impl FnMut(&Load) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: not within 60 s ({} acknowledged)",
                self.acked()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn finish(self) -> (Vec<(String, String, String)>, Vec<Refusal>) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.join().unwrap();
        }
        let acks = self.acks.lock().unwrap().clone();
        let refusals = self.refusals.lock().unwrap().clone();
        (acks, refusals)
    }
}

/// `clients` threads deciding in a loop until stopped, client `i` on
/// replica `i % bases.len()`. Every answer is kept: 201s as acks, anything
/// else (a status, or a transport error) as a refusal; the clients keep
/// going either way, as a deploy tool retrying would.
fn load(bases: &[&str], clients: usize) -> Load {
    let acks: Acks = Arc::default();
    let refusals: Arc<Mutex<Vec<Refusal>>> = Arc::default();
    let per_replica: Arc<Vec<AtomicUsize>> =
        Arc::new(bases.iter().map(|_| AtomicUsize::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let workers = (0..clients)
        .map(|c| {
            let r = c % bases.len();
            let base = bases[r].to_string();
            let (acks, refusals, per_replica, stop) = (
                acks.clone(),
                refusals.clone(),
                per_replica.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let svc = format!("svc-{c}");
                    let req = if n % 3 == 2 {
                        failing_request(&svc, "prod")
                    } else {
                        healthy_request(&svc, "prod")
                    };
                    n += 1;
                    let body = req.to_string();
                    match try_call(
                        &base,
                        "POST",
                        "/v1/decisions",
                        Some(body.as_bytes()),
                        None,
                        "application/json",
                    ) {
                        Ok((201, d)) => {
                            let field = |k: &str| d[k].as_str().unwrap().to_string();
                            acks.lock().unwrap().push((
                                field("id"),
                                field("verdict"),
                                field("hash"),
                            ));
                            per_replica[r].fetch_add(1, Ordering::Relaxed);
                        }
                        Ok((status, body)) => {
                            refusals.lock().unwrap().push(Refusal {
                                status: Some(status),
                                body: body.to_string(),
                            });
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Err(e) => {
                            refusals.lock().unwrap().push(Refusal {
                                status: None,
                                body: e.to_string(),
                            });
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                }
            })
        })
        .collect();
    Load {
        acks,
        refusals,
        per_replica,
        stop,
        workers,
    }
}

/// Every acknowledged decision is stored unchanged, the chain verifies and
/// has no gaps, and no seq was handed out twice. Returns the verify report.
fn check_acks(s: &Server, acks: &[(String, String, String)]) -> Value {
    for (id, verdict, hash) in acks {
        let (st, d) = s.call("GET", &format!("/v1/decisions/{id}"), None);
        assert_eq!(st, 200, "acknowledged decision {id} lost: {d}");
        assert_eq!(d["verdict"], verdict.as_str(), "{id}");
        assert_eq!(d["hash"], hash.as_str(), "{id}");
    }
    let mut ids: Vec<&String> = acks.iter().map(|a| &a.0).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), acks.len(), "a decision id was answered twice");
    let report = s.get_ok("/v1/audit/verify");
    assert_eq!(report["ok"], true, "{report}");
    let checked = report["checked"].as_u64().unwrap();
    assert!(
        checked >= acks.len() as u64,
        "verify checked {checked} < {} acknowledged",
        acks.len()
    );
    report
}

/// Seqs of every stored decision, walking the audit query to the end.
fn all_seqs(s: &Server) -> Vec<u64> {
    let mut seqs = Vec::new();
    let mut path = "/v1/decisions?limit=1000".to_string();
    loop {
        let page = s.get_ok(&path);
        seqs.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["seq"].as_u64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/decisions?limit=1000&cursor={c}"),
            None => break,
        }
    }
    seqs.reverse();
    seqs
}

#[test]
#[cfg_attr(
    verdict_skip_postgres,
    ignore = "VERDICT_SKIP_POSTGRES is set: needs Debian's postgresql package"
)]
fn two_replicas_with_eight_clients_write_one_gap_free_chain() {
    let pg = Postgres::start();
    let url = pg.create_database("verdict");
    let a = replica(&url);
    let b = replica(&url);
    let l = load(&[&a.base, &b.base], 8);
    l.wait_for("300 decisions over both replicas", |l| {
        l.acked() >= 300 && l.acked_on(0) >= 50 && l.acked_on(1) >= 50
    });
    let (acks, refusals) = l.finish();
    assert!(refusals.is_empty(), "nothing was refused: {refusals:?}");

    // Each replica serves every decision, whichever one took it.
    check_acks(&a, &acks);
    let report = check_acks(&b, &acks);
    assert_eq!(
        report["checked"].as_u64().unwrap(),
        acks.len() as u64,
        "stored exactly what was acknowledged"
    );
    assert_eq!(a.get_ok("/v1/audit/verify"), report, "one chain, one head");
    let seqs = all_seqs(&a);
    assert_eq!(
        seqs,
        (1..=acks.len() as u64).collect::<Vec<_>>(),
        "one gap-free chain"
    );
    // The links hold across replicas: each record names its predecessor.
    let page = a.get_ok("/v1/decisions?limit=1000");
    let items = page["items"].as_array().unwrap();
    for pair in items.windows(2) {
        assert_eq!(pair[0]["prev_hash"], pair[1]["hash"], "{}", pair[0]["id"]);
    }
    assert_eq!(
        pg.psql(
            "verdict",
            "SELECT count(*) FROM verdict_decisions WHERE prev_hash IN (SELECT hash FROM verdict_decisions)"
        ),
        (acks.len() - 1).to_string(),
        "every record but the first links to a stored one"
    );
}

#[test]
#[cfg_attr(
    verdict_skip_postgres,
    ignore = "VERDICT_SKIP_POSTGRES is set: needs Debian's postgresql package"
)]
fn kill_9_of_one_replica_under_load_loses_nothing_and_the_other_keeps_deciding() {
    let pg = Postgres::start();
    let url = pg.create_database("verdict");
    let mut a = replica(&url);
    let b = replica(&url);
    let l = load(&[&a.base, &b.base], 8);
    l.wait_for("decisions on both replicas", |l| {
        l.acked_on(0) >= 40 && l.acked_on(1) >= 40
    });
    a.kill9();
    let on_b = l.acked_on(1);
    l.wait_for("replica B deciding after A died", |l| {
        l.acked_on(1) >= on_b + 50
    });
    let (acks, refusals) = l.finish();
    // The clients of A saw transport errors, never a non-201 answer from B.
    assert!(
        refusals.iter().all(|r| r.status.is_none()),
        "only A's clients failed, by transport: {refusals:?}"
    );
    check_acks(&b, &acks);
    let seqs = all_seqs(&b);
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "no gaps");
    // A restarted replica joins the same chain.
    let a = replica(&url);
    let next = a.decide(&healthy_request("after-kill", "prod"));
    assert_eq!(next["seq"], seqs.len() as u64 + 1);
    check_acks(&a, &acks);
}

#[test]
#[cfg_attr(
    verdict_skip_postgres,
    ignore = "VERDICT_SKIP_POSTGRES is set: needs Debian's postgresql package"
)]
fn a_postgres_restart_under_load_gives_clean_errors_and_both_replicas_recover() {
    let mut pg = Postgres::start();
    let url = pg.create_database("verdict");
    let a = replica(&url);
    let b = replica(&url);
    let l = load(&[&a.base, &b.base], 8);
    l.wait_for("decisions before the outage", |l| {
        l.acked_on(0) >= 30 && l.acked_on(1) >= 30
    });
    pg.stop();
    let refused_before = l.refusals.lock().unwrap().len();
    // While it is down: decisions are refused with 503 store_unavailable,
    // and neither replica says it is ready.
    l.wait_for("refusals during the outage", |l| {
        l.refusals.lock().unwrap().len() >= refused_before + 16
    });
    for s in [&a, &b] {
        let (st, body) = s.call("GET", "/readyz", None);
        assert_eq!(st, 503, "not ready while the database is down: {body}");
        let answer = s.json("POST", "/v1/decisions", &healthy_request("down", "prod"));
        let message = assert_error(&answer, 503, "store_unavailable");
        assert!(message.contains("the database is unavailable"), "{message}");
        // The Argo door answers hold, deciding nothing.
        let (st, argo) = s.json(
            "POST",
            "/v1/integrations/argo",
            &healthy_request("down", "prod"),
        );
        assert_eq!(st, 200, "{argo}");
        verdict_e2e::assert_argo_hold(&argo);
    }
    let (during_a, during_b) = (l.acked_on(0), l.acked_on(1));
    pg.run();
    // Both recover without a restart.
    l.wait_for("both replicas deciding again", |l| {
        l.acked_on(0) >= during_a + 20 && l.acked_on(1) >= during_b + 20
    });
    let (acks, refusals) = l.finish();
    for r in &refusals {
        assert_eq!(r.status, Some(503), "a clean error: {r:?}");
        assert!(
            r.body.contains("store_unavailable"),
            "named as the database's outage: {r:?}"
        );
    }
    for s in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(30);
        while s.call("GET", "/readyz", None).0 != 200 {
            assert!(Instant::now() < deadline, "ready again after the outage");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    check_acks(&a, &acks);
    let seqs = all_seqs(&b);
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "no gaps");
}

/// Polls `decide` on `s` until `accept` holds for its record (changes
/// reach other replicas by polling, within a second); returns it.
fn decided_eventually(s: &Server, req: &Value, accept: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = s.decide(req);
        if accept(&d) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "the change never reached the other replica: {d}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[cfg_attr(
    verdict_skip_postgres,
    ignore = "VERDICT_SKIP_POSTGRES is set: needs Debian's postgresql package"
)]
fn policies_bindings_and_freezes_made_on_one_replica_govern_the_other() {
    let pg = Postgres::start();
    let url = pg.create_database("verdict");
    let a = replica(&url);
    let b = replica(&url);
    let strict = healthy_request("strict-svc", "prod");
    assert_eq!(b.decide(&strict)["verdict"], "promote");

    let (st, uploaded) = a.put_policy("my-thresholds", &dist_wasm("thresholds"));
    assert_eq!(st, 201, "{uploaded}");
    let binding = json!({
        "policy": "my-thresholds",
        "selector": {"service": "strict-svc"},
        "mode": "enforce",
        "on_error": "rollback",
        "settings": {"rules": [{"metric": "error_rate", "max": 0.0005}]},
    });
    let (st, body) = a.json("PUT", "/v1/bindings/strict", &binding);
    assert_eq!(st, 200, "{body}");

    let d = decided_eventually(&b, &strict, |d| d["verdict"] == "rollback");
    let p = verdict_e2e::policy_result(&d, "strict");
    assert_eq!(p["digest"], uploaded["digest"], "B compiled A's upload");
    assert_eq!(
        b.get_ok("/v1/bindings/strict")["binding"]["policy"],
        "my-thresholds"
    );

    let (st, freeze) = a.json(
        "POST",
        "/v1/freezes",
        &json!({"selector": {"service": "pay"}, "reason": "INC-9", "until": "2099-01-01T00:00:00Z"}),
    );
    assert_eq!(st, 201, "{freeze}");
    let frozen = decided_eventually(&b, &healthy_request("pay", "prod"), |d| {
        d["verdict"] == "freeze"
    });
    assert_eq!(frozen["freezes"], json!([freeze["id"].clone()]));

    // Deletions travel too: B lifts the freeze, A drops the binding.
    let id = freeze["id"].as_str().unwrap();
    assert_eq!(b.call("DELETE", &format!("/v1/freezes/{id}"), None).0, 200);
    decided_eventually(&a, &healthy_request("pay", "prod"), |d| {
        d["verdict"] == "promote"
    });
    assert_eq!(b.call("DELETE", "/v1/bindings/strict", None).0, 200);
    decided_eventually(&a, &strict, |d| d["verdict"] == "promote");
    assert_eq!(a.call("GET", "/v1/bindings/strict", None).0, 404);
}

#[test]
#[cfg_attr(
    verdict_skip_postgres,
    ignore = "VERDICT_SKIP_POSTGRES is set: needs Debian's postgresql package"
)]
fn one_idempotency_key_raced_on_both_replicas_gives_one_decision() {
    let pg = Postgres::start();
    let url = pg.create_database("verdict");
    let a = Arc::new(replica(&url));
    let b = Arc::new(replica(&url));
    let keys = 20;
    for k in 0..keys {
        let mut req = healthy_request("race", "prod");
        req["idempotency_key"] = json!(format!("deploy-{k}"));
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let racers: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .map(|s| {
                let (req, barrier) = (req.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    s.json("POST", "/v1/decisions", &req)
                })
            })
            .collect();
        let answers: Vec<(u16, Value)> = racers.into_iter().map(|r| r.join().unwrap()).collect();
        for (st, d) in &answers {
            assert!(*st == 201 || *st == 200, "{st}: {d}");
        }
        assert_eq!(
            answers[0].1, answers[1].1,
            "key deploy-{k}: both replicas answer the same record"
        );
    }
    assert_eq!(
        pg.psql("verdict", "SELECT count(*) FROM verdict_decisions"),
        keys.to_string(),
        "one decision per key"
    );
    // Bound to the request: the same key with another request is a conflict
    // on either replica.
    let mut other = failing_request("race", "prod");
    other["idempotency_key"] = json!("deploy-0");
    for s in [&a, &b] {
        assert_error(
            &s.json("POST", "/v1/decisions", &other),
            409,
            "idempotency_conflict",
        );
    }
    let report = a.get_ok("/v1/audit/verify");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["checked"], keys);
}

#[test]
#[cfg_attr(
    verdict_skip_postgres,
    ignore = "VERDICT_SKIP_POSTGRES is set: needs Debian's postgresql package"
)]
fn migrate_copies_a_sled_store_and_the_chain_verifies_with_the_same_head() {
    let mut s = Server::start();
    let mut decisions = Vec::new();
    for i in 0..12 {
        let mut req = if i % 4 == 3 {
            failing_request("api", "prod")
        } else {
            healthy_request(["api", "web"][i % 2], "prod")
        };
        if i % 3 == 0 {
            req["idempotency_key"] = json!(format!("k-{i}"));
        }
        decisions.push(s.decide(&req));
    }
    let (st, uploaded) = s.put_policy("my-thresholds", &dist_wasm("thresholds"));
    assert_eq!(st, 201, "{uploaded}");
    let binding = json!({
        "policy": "my-thresholds",
        "selector": {"service": "strict-svc"},
        "settings": {"rules": [{"metric": "error_rate", "max": 0.0005}]},
    });
    assert_eq!(s.json("PUT", "/v1/bindings/strict", &binding).0, 200);
    let (st, freeze) = s.json(
        "POST",
        "/v1/freezes",
        &json!({"selector": {"service": "pay"}, "reason": "INC-9", "until": "2099-01-01T00:00:00Z"}),
    );
    assert_eq!(st, 201, "{freeze}");
    let sled_report = s.get_ok("/v1/audit/verify");
    let policies = s.get_ok("/v1/policies");
    let bindings = s.get_ok("/v1/bindings");
    let freezes = s.get_ok("/v1/freezes");
    // The audit query answers exactly as on sled: filters, newest first,
    // time ranges, cursors.
    let first = s.get_ok("/v1/decisions?limit=4");
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let at = |i: usize| decisions[i]["decided_at"].as_str().unwrap().to_string();
    let queries = vec![
        "/v1/decisions".to_string(),
        "/v1/decisions?limit=4".to_string(),
        format!("/v1/decisions?limit=4&cursor={cursor}"),
        "/v1/decisions?verdict=rollback".to_string(),
        "/v1/decisions?service=web&environment=prod&verdict=promote".to_string(),
        format!("/v1/decisions?since={}&until={}", at(4), at(9)),
        format!("/v1/decisions?since={}&service=api&limit=2", at(2)),
        "/v1/decisions?service=nobody".to_string(),
    ];
    let answers: Vec<Value> = queries.iter().map(|q| s.get_ok(q)).collect();
    let bad_cursor = s.call("GET", "/v1/decisions?cursor=zz", None);
    let page = s.get_ok("/v1/decisions?service=api&limit=3");
    assert!(s.terminate().success());

    let pg = Postgres::start();
    let url = pg.create_database("verdict");
    let migrate = |from: &std::path::Path| {
        std::process::Command::new(binary())
            .args(["store", "migrate", "--from"])
            .arg(from)
            .args(["--to", &url])
            .output()
            .expect("run verdict store migrate")
    };
    let out = migrate(&s.data_dir);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    let head = sled_report["head"].as_str().unwrap();
    assert!(text.contains("copied 12 decisions"), "{text}");
    assert!(text.contains(head), "names the verified head: {text}");
    // Into a database that already holds a chain: refused, nothing changed.
    let again = migrate(&s.data_dir);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds an audit chain (12"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let p = replica(&url);
    assert_eq!(p.get_ok("/v1/audit/verify"), sled_report, "same head hash");
    assert_eq!(p.get_ok("/v1/policies"), policies);
    assert_eq!(p.get_ok("/v1/bindings"), bindings);
    assert_eq!(p.get_ok("/v1/freezes"), freezes);
    assert_eq!(
        p.get_ok("/v1/decisions?service=api&limit=3"),
        page,
        "same pages"
    );
    for (q, sled_answer) in queries.iter().zip(&answers) {
        assert_eq!(&p.get_ok(q), sled_answer, "GET {q}");
    }
    assert_eq!(p.call("GET", "/v1/decisions?cursor=zz", None), bad_cursor);
    for d in &decisions {
        assert_eq!(
            &p.get_ok(&format!("/v1/decisions/{}", d["id"].as_str().unwrap())),
            d
        );
    }
    // Idempotency keys came along, bound to their requests.
    let mut retry = healthy_request("api", "prod");
    retry["idempotency_key"] = json!("k-0");
    let (st, again) = p.json("POST", "/v1/decisions", &retry);
    assert_eq!((st, &again), (200, &decisions[0]));
    // The copy keeps deciding: the chain continues from the sled head.
    let next = p.decide(&healthy_request("strict-svc", "prod"));
    assert_eq!(next["seq"], 13);
    assert_eq!(next["prev_hash"], head);
    assert_eq!(next["verdict"], "rollback", "the migrated binding governs");
}

/// `verdict serve` that must fail to start; returns its stderr.
fn refused_start(url: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("VERDICT_STORE", url)
        .env_remove("VERDICT_CONFIG")
        .env_remove("VERDICT_TOKENS")
        .output()
        .expect("run verdict serve");
    assert!(!out.status.success(), "must not start");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
#[cfg_attr(
    verdict_skip_postgres,
    ignore = "VERDICT_SKIP_POSTGRES is set: needs Debian's postgresql package"
)]
fn database_set_up_errors_say_what_to_fix() {
    let pg = Postgres::start();
    pg.create_database("verdict");
    // A bad URL, without echoing it (it may hold a password).
    let err = refused_start("mysql://root:hunter2@db/verdict");
    assert!(err.contains("must be a `postgres://"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    // Nobody listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let err = refused_start(&format!("postgres://verdict:pw@127.0.0.1:{port}/verdict"));
    assert!(
        err.contains("cannot reach `postgres://verdict@127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("PostgreSQL is running"), "{err}");
    // Bad credentials.
    let err = refused_start(&pg.url_as("postgres", "wrong-password", "verdict"));
    assert!(err.contains("refused user `postgres`"), "{err}");
    assert!(!err.contains("wrong-password"), "{err}");
    // A database that does not exist.
    let err = refused_start(&pg.url("nowhere"));
    assert!(
        err.contains("the database `nowhere` does not exist"),
        "{err}"
    );
    // A user without the privilege to create the tables.
    pg.psql("verdict", "CREATE ROLE app LOGIN PASSWORD 'app-pw'");
    pg.psql("verdict", "REVOKE CREATE ON SCHEMA public FROM PUBLIC");
    let err = refused_start(&pg.url_as("app", "app-pw", "verdict"));
    assert!(err.contains("user `app` lacks a privilege"), "{err}");
}
