//! The audit console in a real browser: Debian's Chromium, headless,
//! against the real server. `--dump-dom` gives the page as the browser
//! built it after running its script (which only it can run); `--screenshot`
//! renders it. Set `VERDICT_UPDATE_SCREENSHOT=1` to rewrite the README's
//! screenshot (`docs/console-decision.png`) from this run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};
use sha2::Digest;
use verdict_e2e::{failing_request, healthy_request, Options, Server};

fn chromium() -> PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the console tests need a real browser: `apt-get install chromium` (`make test` \
                 does it when run as root)"
            )
        })
}

/// Run headless Chromium on `url` with `args`; returns stdout.
fn browse(url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            // Root in CI: Chromium's sandbox refuses to run as root.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dom(url: &str) -> String {
    browse(url, &["--dump-dom"])
}

/// Every `src` and `href` in the built page stays on this server, so the
/// page made no request elsewhere (the CSP would block one anyway).
#[track_caller]
fn assert_self_contained(page: &str) {
    for attr in ["src=\"", "href=\""] {
        for (i, _) in page.match_indices(attr) {
            let url = &page[i + attr.len()..];
            let url = &url[..url.find('"').unwrap_or(url.len())];
            assert!(
                url.starts_with('/') || url.starts_with('#'),
                "a reference off this server: {url}"
            );
        }
    }
}

/// Four metrics of 1,000 samples a side, the canary's error rate high.
fn heavy_request() -> Value {
    let series = |base: f64, spread: f64| -> Vec<f64> {
        (0..1000)
            .map(|i| base + spread * (((i * 7919) % 1000) as f64 / 1000.0))
            .collect()
    };
    json!({
        "deployment": {"service": "checkout", "environment": "prod", "version": "v2"},
        "metrics": [
            {"name": "error_rate", "baseline": series(0.001, 0.002), "canary": series(0.04, 0.02)},
            {"name": "latency_p99", "unit": "s", "baseline": series(0.20, 0.05), "canary": series(0.22, 0.06)},
            {"name": "cpu", "baseline": series(0.4, 0.2), "canary": series(0.42, 0.2)},
            {"name": "saturation", "baseline": series(0.5, 0.1), "canary": series(0.5, 0.1)}
        ]
    })
}

#[test]
fn the_console_in_a_real_browser() {
    let s = Server::start();
    s.decide(&healthy_request("api", "prod"));
    s.decide(&failing_request("api", "staging"));
    let heavy = s.decide(&heavy_request());
    let id = heavy["id"].as_str().unwrap();

    // The list, as the browser built it: every decision, times in the
    // viewer's zone (the script ran), a filter that filters.
    let list = dom(&format!("{}/ui/", s.base));
    for d in ["dec-000000000001", "dec-000000000002", id] {
        assert!(list.contains(d), "{d} missing from the list:\n{list}");
    }
    assert!(
        list.contains("data-local=\"1\""),
        "the script did not run:\n{list}"
    );
    assert_self_contained(&list);
    let filtered = dom(&format!("{}/ui/?environment=staging", s.base));
    assert!(filtered.contains("dec-000000000002"), "{filtered}");
    assert!(!filtered.contains("dec-000000000001"), "{filtered}");

    // One decision: every policy, one plot per metric.
    let started = Instant::now();
    let page = dom(&format!("{}/ui/decisions/{id}", s.base));
    let render = started.elapsed();
    for p in heavy["policies"].as_array().unwrap() {
        let binding = p["binding"].as_str().unwrap();
        assert!(page.contains(binding), "{binding} missing");
    }
    assert_eq!(page.matches("<svg").count(), 4, "one plot per metric");
    assert_self_contained(&page);
    let (_, raw) = s.call("GET", &format!("/ui/decisions/{id}"), None);
    let weight = raw.as_str().map(str::len).unwrap_or(0);
    eprintln!(
        "decision page, 4 metrics x 1,000 samples a side: {weight} bytes of HTML, \
         {} ms in headless Chromium (start-up included)",
        render.as_millis()
    );

    // A screenshot renders (and refreshes the README's when asked to).
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("decision.png");
    browse(
        &format!("{}/ui/decisions/{id}", s.base),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1500",
            "--hide-scrollbars",
        ],
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    assert!(png.len() > 20_000, "a blank page? {} bytes", png.len());
    if std::env::var_os("VERDICT_UPDATE_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join("console-decision.png"), &png).unwrap();
    }
}

#[test]
fn the_console_in_a_browser_needs_a_token_when_tokens_are_set() {
    let s = Server::start_with(Options {
        env: vec![(
            "VERDICT_TOKENS".into(),
            format!(
                "ci:{}:decide",
                hex::encode(sha2::Sha256::digest(b"a-decide-token"))
            ),
        )],
        ..Options::default()
    });
    let page = dom(&format!("{}/ui/", s.base));
    assert!(page.contains("unauthorized"), "{page}");
    assert!(!page.contains("<table"), "{page}");
}
