//! The HTTP API's statuses and bodies, in-process with `warp::test`: the
//! real routes over a real service (sled in a temp dir, the built-in
//! policies compiled), without a socket. What needs a process or a socket
//! (signals, durability, connection limits, the CLI) is tested against the
//! real binary in the `tests/` crate.

use std::sync::OnceLock;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use warp::filters::BoxedFilter;
use warp::http::Response;
use warp::reply::Response as Reply;

use super::observe::{RouteSlot, UNMATCHED};
use super::{routes, Ctx};
use crate::config::{Config, Role, TokenConfig};
use crate::service::App;

/// One service for the whole module: opening one compiles the built-ins.
fn app() -> App {
    static APP: OnceLock<(tempfile::TempDir, App)> = OnceLock::new();
    APP.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let app = App::open(&config).expect("open the service");
        (dir, app)
    })
    .1
    .clone()
}

/// The routes as `verdict serve` builds them from `config`.
fn api(config: Config) -> BoxedFilter<(Reply,)> {
    routes(Ctx::new(app(), &config))
}

fn open_api() -> BoxedFilter<(Reply,)> {
    api(Config::default())
}

const ADMIN: &str = "admin-token";
const DECIDER: &str = "decide-token";

/// With two tokens: an admin (admin + read) and a decider (decide only).
fn token_api() -> BoxedFilter<(Reply,)> {
    let token = |name: &str, secret: &str, roles: Vec<Role>| TokenConfig {
        name: name.into(),
        sha256: hex::encode(Sha256::digest(secret.as_bytes())),
        roles,
    };
    api(Config {
        tokens: vec![
            token("platform", ADMIN, vec![Role::Admin, Role::Read]),
            token("argo", DECIDER, vec![Role::Decide]),
        ],
        ..Config::default()
    })
}

fn request(method: &str, path: &str) -> warp::test::RequestBuilder {
    warp::test::request()
        .method(method)
        .path(path)
        .header("host", "127.0.0.1:8080")
}

fn post_json(path: &str, body: &Value) -> warp::test::RequestBuilder {
    request("POST", path)
        .header("content-type", "application/json")
        .body(body.to_string())
}

fn body(r: &Response<bytes::Bytes>) -> Value {
    serde_json::from_slice(r.body())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(r.body())))
}

/// `status`, and the JSON error body with `code`.
#[track_caller]
fn assert_error(r: &Response<bytes::Bytes>, status: u16, code: &str) {
    let v = body(r);
    assert_eq!(r.status().as_u16(), status, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
}

fn decision_request(service: &str) -> Value {
    json!({"deployment": {"service": service, "environment": "staging"}})
}

#[tokio::test]
async fn a_decision_is_created_then_repeated_under_its_key() {
    let api = open_api();
    let mut req = decision_request("http-idem");
    req["idempotency_key"] = json!("deploy-42");
    let first = post_json("/v1/decisions", &req).reply(&api).await;
    assert_eq!(first.status(), 201, "{}", body(&first));
    let again = post_json("/v1/decisions", &req).reply(&api).await;
    assert_eq!(again.status(), 200);
    assert_eq!(body(&again)["id"], body(&first)["id"]);
    // Another request under the same key.
    let mut other = decision_request("http-idem-other");
    other["idempotency_key"] = json!("deploy-42");
    let conflict = post_json("/v1/decisions", &other).reply(&api).await;
    assert_error(&conflict, 409, "idempotency_conflict");

    let id = body(&first)["id"].as_str().unwrap().to_string();
    let got = request("GET", &format!("/v1/decisions/{id}"))
        .reply(&api)
        .await;
    assert_eq!(got.status(), 200);
    assert_eq!(body(&got)["id"], id.as_str());
    // The reply to the append is the stored record, byte for byte what a
    // read and a repeat under the key answer.
    for r in [&first, &again, &got] {
        assert_eq!(r.headers()["content-type"], "application/json");
    }
    assert_eq!(first.body(), got.body());
    assert_eq!(again.body(), got.body());
}

#[tokio::test]
async fn bodies_must_be_json_of_the_right_shape() {
    let api = open_api();
    let no_type = request("POST", "/v1/decisions")
        .body(decision_request("x").to_string())
        .reply(&api)
        .await;
    assert_eq!(no_type.status(), 415, "{}", body(&no_type));
    let form = request("POST", "/v1/decisions")
        .header("content-type", "text/plain")
        .body(decision_request("x").to_string())
        .reply(&api)
        .await;
    assert_eq!(form.status(), 415, "{}", body(&form));
    let broken = request("POST", "/v1/decisions")
        .header("content-type", "application/json")
        .body("{\"deployment\": ")
        .reply(&api)
        .await;
    assert_eq!(broken.status(), 400, "{}", body(&broken));
    let wrong = post_json("/v1/decisions", &json!({"deployment": {"service": 7}}))
        .reply(&api)
        .await;
    assert_eq!(wrong.status(), 422, "{}", body(&wrong));
    let bad_name = post_json("/v1/decisions", &decision_request("Api"))
        .reply(&api)
        .await;
    assert_eq!(bad_name.status(), 422, "{}", body(&bad_name));
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_naming_the_setting() {
    let api = api(Config {
        max_body_bytes: 64,
        ..Config::default()
    });
    let big = json!({"deployment": {"service": "a".repeat(100), "environment": "e"}});
    let r = post_json("/v1/decisions", &big).reply(&api).await;
    assert_error(&r, 413, "too_large");
    assert!(
        body(&r)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_body_bytes"),
        "{}",
        body(&r)
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let api = open_api();
    let r = request("GET", "/v2/decisions").reply(&api).await;
    assert_eq!(r.status(), 404);
    assert!(body(&r)["error"]["code"].is_string());
    let r = request("PATCH", "/v1/decisions").reply(&api).await;
    assert_eq!(r.status(), 405);
    assert!(body(&r)["error"]["code"].is_string());
    for path in [
        "/v1/decisions/nope",
        "/v1/policies/nope",
        "/v1/bindings/nope",
    ] {
        let r = request("GET", path).reply(&api).await;
        assert_error(&r, 404, "not_found");
    }
    let r = request("DELETE", "/v1/freezes/frz-nope").reply(&api).await;
    assert_error(&r, 404, "not_found");
}

#[tokio::test]
async fn tokens_gate_every_route_but_the_probes_and_metrics() {
    let api = token_api();
    let r = request("GET", "/v1/policies").reply(&api).await;
    assert_eq!(r.status(), 401, "{}", body(&r));
    let r = request("GET", "/v1/policies")
        .header("authorization", format!("Bearer {DECIDER}"))
        .reply(&api)
        .await;
    assert_eq!(r.status(), 403, "{}", body(&r));
    let r = request("GET", "/v1/policies")
        .header("authorization", format!("Bearer {ADMIN}"))
        .reply(&api)
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(body(&r)["items"].as_array().unwrap().len(), 5);
    for probe in ["/healthz", "/readyz", "/metrics"] {
        let r = request("GET", probe).reply(&api).await;
        assert_eq!(r.status(), 200, "{probe}");
    }
    // With tokens, any Host: the server may listen anywhere.
    let r = request("GET", "/v1/policies")
        .header("host", "verdict.example.com")
        .header("authorization", format!("Bearer {ADMIN}"))
        .reply(&api)
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn without_tokens_only_loopback_hosts_and_origins_are_served() {
    let api = open_api();
    let r = request("GET", "/v1/policies")
        .header("host", "rebound.example.com")
        .reply(&api)
        .await;
    assert_eq!(r.status(), 421, "{}", body(&r));
    let r = request("GET", "/v1/policies")
        .header("origin", "https://evil.example")
        .reply(&api)
        .await;
    assert_eq!(r.status(), 403, "{}", body(&r));
    let r = request("GET", "/v1/policies")
        .header("origin", "http://localhost:3000")
        .reply(&api)
        .await;
    assert_eq!(r.status(), 200);
    // The probes answer whatever the Host (a kubelet probes the pod IP).
    let r = request("GET", "/healthz")
        .header("host", "10.0.0.7:8080")
        .reply(&api)
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn readiness_reports_the_active_set() {
    let r = request("GET", "/readyz").reply(&open_api()).await;
    assert_eq!(r.status(), 200);
    let v = body(&r);
    assert_eq!(v["ready"], true);
    assert!(v["policies"].as_u64().unwrap() >= 5, "{v}");
    assert!(v["bindings"].as_u64().unwrap() >= 5, "{v}");
    assert!(v.get("store_failure").is_none(), "{v}");
}

#[tokio::test]
async fn the_argo_door_answers_200_even_for_a_refused_body() {
    let api = open_api();
    let r = request("POST", "/v1/integrations/argo")
        .header("content-type", "text/plain")
        .body("{}")
        .reply(&api)
        .await;
    assert_eq!(r.status(), 200);
    let v = body(&r);
    assert_eq!(v["verdict"], "hold", "{v}");
    assert_eq!(v["decision_id"], Value::Null, "{v}");
}

/// Each route labels its requests with its own template, refused ones
/// included; a path no route has is one label.
#[tokio::test]
async fn each_request_is_labelled_with_its_route_template() {
    let api = open_api();
    let cases = [
        ("POST", "/v1/decisions", "/v1/decisions"),
        ("GET", "/v1/decisions", "/v1/decisions"),
        ("GET", "/v1/decisions/abc", "/v1/decisions/{id}"),
        (
            "POST",
            "/v1/decisions/abc/replay",
            "/v1/decisions/{id}/replay",
        ),
        ("POST", "/v1/sources/preview", "/v1/sources/preview"),
        ("GET", "/v1/audit/verify", "/v1/audit/verify"),
        ("GET", "/v1/audit/checkpoint", "/v1/audit/checkpoint"),
        ("GET", "/v1/audit/key", "/v1/audit/key"),
        ("GET", "/v1/policies", "/v1/policies"),
        ("PUT", "/v1/policies/p", "/v1/policies/{name}"),
        ("DELETE", "/v1/policies/p", "/v1/policies/{name}"),
        ("GET", "/v1/bindings", "/v1/bindings"),
        ("GET", "/v1/bindings/b", "/v1/bindings/{name}"),
        ("GET", "/v1/freezes", "/v1/freezes"),
        ("DELETE", "/v1/freezes/f", "/v1/freezes/{id}"),
        ("POST", "/v1/integrations/argo", "/v1/integrations/argo"),
        (
            "POST",
            "/v1/integrations/flagger/rollback",
            "/v1/integrations/flagger/{gate}",
        ),
        ("GET", "/healthz", "/healthz"),
        ("GET", "/readyz", "/readyz"),
        ("GET", "/metrics", "/metrics"),
        ("GET", "/ui", "/ui"),
        ("GET", "/ui/", "/ui/"),
        ("GET", "/ui/decisions/dec-1", "/ui/decisions/{id}"),
        (
            "GET",
            "/ui/decisions/dec-1/replay",
            "/ui/decisions/{id}/replay",
        ),
        ("GET", "/ui/chain", "/ui/chain"),
        ("GET", "/ui/static/app.js", "/ui/static/{file}"),
        // A wrong method on a known path is still about that route.
        ("PATCH", "/v1/decisions", "/v1/decisions"),
        ("GET", "/v1/decisions/", UNMATCHED),
        ("GET", "/v1/decisions/a/b", UNMATCHED),
        ("GET", "/wp-admin.php", UNMATCHED),
    ];
    for (method, path, template) in cases {
        let slot = RouteSlot::default();
        let _ = request(method, path)
            .extension(slot.clone())
            .reply(&api)
            .await;
        assert_eq!(slot.get(), template, "{method} {path}");
    }
}

// --------------------------------------------------------------- console ----

fn html(r: &Response<bytes::Bytes>) -> String {
    String::from_utf8_lossy(r.body()).into_owned()
}

/// Every `src` and `href` stays on this server.
#[track_caller]
fn assert_self_contained(page: &str) {
    for attr in ["src=\"", "href=\""] {
        for (i, _) in page.match_indices(attr) {
            let url = &page[i + attr.len()..];
            assert!(
                url.starts_with('/') || url.starts_with('#'),
                "a reference off this server: {}",
                &url[..url.find('"').unwrap_or(url.len()).min(80)]
            );
        }
    }
}

#[tokio::test]
async fn the_console_lists_filters_and_shows_decisions() {
    let api = open_api();
    let mut bad = decision_request("console-svc");
    bad["metrics"] =
        json!([{"name": "error_rate", "canary": [0.05, 0.06, 0.05, 0.04, 0.05, 0.06]}]);
    let rolled = body(&post_json("/v1/decisions", &bad).reply(&api).await);
    assert_eq!(rolled["verdict"], "rollback", "{rolled}");
    let id = rolled["id"].as_str().unwrap();

    let r = request(
        "GET",
        "/ui/?service=console-svc&verdict=rollback&environment=",
    )
    .reply(&api)
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("default-src 'none'"));
    let list = html(&r);
    assert!(
        list.contains(&format!("href=\"/ui/decisions/{id}\"")),
        "{list}"
    );
    assert!(list.contains("v-rollback"), "{list}");
    assert_self_contained(&list);
    let r = request("GET", "/ui/?service=console-svc&verdict=promote")
        .reply(&api)
        .await;
    assert!(html(&r).contains("No decisions match."));
    // Paging follows the API's cursors, keeping the filters.
    post_json("/v1/decisions", &decision_request("console-svc"))
        .reply(&api)
        .await;
    let first = html(
        &request("GET", "/ui/?service=console-svc&limit=1")
            .reply(&api)
            .await,
    );
    let marker = "rel=\"next\" href=\"";
    let at = first.find(marker).expect("a next link") + marker.len();
    let next = first[at..].split('"').next().unwrap().replace("&amp;", "&");
    assert!(
        next.starts_with("/ui/?service=console-svc&limit=1&cursor="),
        "{next}"
    );
    let second = html(&request("GET", &next).reply(&api).await);
    assert!(
        second.contains(&format!("href=\"/ui/decisions/{id}\"")),
        "{second}"
    );
    assert!(
        !first.contains(&format!("href=\"/ui/decisions/{id}\"")),
        "{first}"
    );

    let r = request("GET", "/ui/?since=yesterday").reply(&api).await;
    assert_eq!(r.status(), 400);
    assert!(html(&r).contains("RFC 3339"), "{}", html(&r));

    let r = request("GET", &format!("/ui/decisions/{id}"))
        .reply(&api)
        .await;
    assert_eq!(r.status(), 200);
    let page = html(&r);
    for p in rolled["policies"].as_array().unwrap() {
        assert!(page.contains(p["binding"].as_str().unwrap()), "{page}");
    }
    assert_eq!(page.matches("<svg").count(), 1, "one plot per metric");
    assert!(
        page.contains(r#"class="threshold""#),
        "the threshold is drawn"
    );
    assert_self_contained(&page);

    let r = request("GET", &format!("/ui/decisions/{id}/replay"))
        .reply(&api)
        .await;
    assert!(html(&r).contains("Identical"), "{}", html(&r));
    let r = request("GET", "/ui/decisions/dec-999999999999")
        .reply(&api)
        .await;
    assert_eq!(r.status(), 404);
    let r = request("GET", "/ui/chain").reply(&api).await;
    let chain = html(&r);
    assert!(chain.contains("Verified"), "{chain}");
    assert!(chain.contains("Latest signed checkpoint"), "{chain}");
    for asset in ["/ui/static/style.css", "/ui/static/app.js"] {
        let r = request("GET", asset).reply(&api).await;
        assert_eq!(r.status(), 200, "{asset}");
    }
}

#[tokio::test]
async fn the_console_needs_the_read_role_when_tokens_are_set() {
    let api = token_api();
    let r = request("GET", "/ui/").reply(&api).await;
    assert_eq!(r.status(), 401);
    // A browser asks for the token (as a Basic password) on this header.
    let challenge = r.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("Basic realm=\"verdict\""), "{challenge}");
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("auditor:{ADMIN}"),
    );
    let r = request("GET", "/ui/")
        .header("authorization", format!("Basic {basic}"))
        .reply(&api)
        .await;
    assert_eq!(r.status(), 200);
    let r = request("GET", "/ui/")
        .header("authorization", format!("Bearer {DECIDER}"))
        .reply(&api)
        .await;
    assert_eq!(r.status(), 403);
    let r = request("GET", "/ui/")
        .header("authorization", format!("Bearer {ADMIN}"))
        .reply(&api)
        .await;
    assert_eq!(r.status(), 200);
}
