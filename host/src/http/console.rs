//! The audit console at `/ui/`: server-rendered HTML for people, over the
//! same service calls as the JSON API and under the same auth (role
//! `read`; open on loopback without tokens, like the API).
//!
//! - `/ui/` lists decisions, newest first, filtered by the API's own query
//!   parameters (`/ui/?verdict=rollback` is a link to share) and paged
//!   with its cursors;
//! - `/ui/decisions/{id}` shows one decision: verdict and reasons, each
//!   policy's vote, abstention or error, one plot per metric (baseline vs
//!   canary, with the thresholds the policies named), where pulled metrics
//!   came from, the deployment and the change;
//! - `/ui/decisions/{id}/replay` replays it as recorded and shows the diff
//!   (nothing is stored);
//! - `/ui/chain`: the chain's verify result, the latest signed checkpoint
//!   and its key, freezes and bindings.
//!
//! Every page works with JavaScript off; the one small script only shows
//! times in the viewer's time zone (they are rendered in UTC). Pages load
//! nothing from elsewhere: the stylesheet and script are compiled into the
//! binary and served from `/ui/static/`, and the Content-Security-Policy
//! header forbids anything else.

pub mod plot;

use std::collections::HashMap;

use maud::{html, Markup, DOCTYPE};
use warp::http::{header, StatusCode};
use warp::reply::Response;
use warp::Reply;

use super::handlers::parse_query;
use crate::domain::{Decision, PolicyResult, Verdict};
use crate::service::{App, ReplayRequest, ServiceError};
use crate::store::Query;

/// Nothing from elsewhere: scripts, styles and images from this server,
/// no frames, no forms posting elsewhere.
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = include_str!("console/style.css");
const SCRIPT: &str = include_str!("console/app.js");

/// An HTML answer with the console's security headers.
fn html_response(status: StatusCode, page: Markup) -> Response {
    let mut r =
        warp::reply::with_status(warp::reply::html(page.into_string()), status).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    r
}

/// GET /ui/static/{file}: the stylesheet and the script.
pub fn asset(name: &str) -> Option<Response> {
    let (body, ctype) = match name {
        "style.css" => (STYLE, "text/css; charset=utf-8"),
        "app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        _ => return None,
    };
    let mut r = warp::reply::with_header(body, header::CONTENT_TYPE, ctype).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("max-age=300"),
    );
    Some(r)
}

fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Verdict" }
                link rel="stylesheet" href="/ui/static/style.css";
                script src="/ui/static/app.js" defer {}
            }
            body {
                header {
                    nav aria-label="Console" {
                        a.brand href="/ui/" { "Verdict" }
                        a href="/ui/" { "Decisions" }
                        a href="/ui/chain" { "Chain, freezes, bindings" }
                    }
                }
                main { (body) }
            }
        }
    }
}

fn error_page(status: StatusCode, message: &str) -> Response {
    html_response(
        status,
        page(
            "Error",
            html! {
                h1 { "Cannot show this" }
                p.error role="alert" { (message) }
                p { a href="/ui/" { "Back to the decisions" } }
            },
        ),
    )
}

fn service_error(e: ServiceError) -> Response {
    let api = super::errors::ApiError::from(e);
    error_page(api.status, &api.message)
}

fn verdict_badge(v: Verdict) -> Markup {
    html! { span class=(format!("verdict v-{}", v.as_str())) { (v.as_str()) } }
}

/// A time as UTC text the script turns into the viewer's zone.
fn time(t: jiff::Timestamp) -> Markup {
    let utc = t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
    html! { time datetime=(t.to_string()) { (utc) } }
}

use crate::domain::percent_encode as encode;

// -------------------------------------------------------------- the list ----

/// GET /ui/?service=&environment=&verdict=&since=&until=&limit=&cursor=
pub async fn list(app: App, pairs: Vec<(String, String)>) -> Response {
    // An empty field of the filter form means "any".
    let given: Vec<(String, String)> = pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    let mut q = HashMap::new();
    for (k, v) in &given {
        q.insert(k.clone(), v.clone());
    }
    let query = match parse_query(q) {
        Ok(query) => query,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.message),
    };
    let filters: Vec<(String, String)> = given.into_iter().filter(|(k, _)| k != "cursor").collect();
    match app.query(query.clone()).await {
        Ok(page_) => html_response(StatusCode::OK, list_page(&query, &filters, &page_)),
        Err(e) => service_error(e),
    }
}

fn list_page(q: &Query, filters: &[(String, String)], p: &crate::store::Page) -> Markup {
    let value = |k: &str| {
        filters
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let next = p.next_cursor.as_ref().map(|c| {
        let mut parts: Vec<String> = filters
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        parts.push(format!("cursor={}", encode(c)));
        format!("/ui/?{}", parts.join("&"))
    });
    page(
        "Decisions",
        html! {
            h1 { "Decisions" }
            form.filters method="get" action="/ui/" role="search" {
                label { "Service " input name="service" value=(value("service")) size="16"; }
                label { "Environment " input name="environment" value=(value("environment")) size="12"; }
                label { "Verdict "
                    select name="verdict" {
                        option value="" { "any" }
                        @for v in ["promote", "hold", "rollback", "freeze"] {
                            option value=(v) selected[value("verdict") == v] { (v) }
                        }
                    }
                }
                label { "Since " input name="since" value=(value("since")) placeholder="2026-01-31T00:00:00Z" size="20"; }
                label { "Until " input name="until" value=(value("until")) placeholder="2026-02-01T00:00:00Z" size="20"; }
                button type="submit" { "Filter" }
                " " a href="/ui/" { "Clear" }
            }
            @if p.items.is_empty() {
                p.empty { "No decisions match." }
            } @else {
                table.decisions {
                    caption { (p.items.len()) " decisions, newest first"
                        @if q.service.is_some() || q.environment.is_some() || q.verdict.is_some() { " (filtered)" } }
                    thead { tr { th scope="col" { "Time" } th scope="col" { "Decision" } th scope="col" { "Service" }
                        th scope="col" { "Environment" } th scope="col" { "Verdict" } th scope="col" { "Why" } } }
                    tbody {
                        @for d in &p.items {
                            tr {
                                td { (time(d.decided_at)) }
                                td { a href=(format!("/ui/decisions/{}", d.id)) { (d.id) } }
                                td { (d.request.deployment.service) }
                                td { (d.request.deployment.environment) }
                                td { (verdict_badge(d.verdict)) }
                                td.why { (d.reasons.first().map(|r| r.message.as_str()).unwrap_or("")) }
                            }
                        }
                    }
                }
            }
            @if let Some(href) = next {
                p.pager { a rel="next" href=(href) { "Older decisions →" } }
            }
        },
    )
}

// ---------------------------------------------------------- one decision ----

/// GET /ui/decisions/{id}
pub async fn decision(app: App, id: String) -> Response {
    match app.decision(&id).await {
        Ok(d) => html_response(StatusCode::OK, decision_page(&d)),
        Err(e) => service_error(e),
    }
}

fn outcome(p: &PolicyResult) -> Markup {
    html! {
        @if let Some(e) = &p.error {
            span.outcome.error { "error (" (e.kind.as_str()) ")" }
            @if let Some(v) = p.verdict { " → counts as " (verdict_badge(v)) }
            div.detail { (e.message) }
        } @else if let Some(why) = &p.abstained {
            span.outcome.abstain { "abstained" }
            div.detail { (why) }
        } @else if let Some(v) = p.verdict {
            (verdict_badge(v))
        }
    }
}

fn decision_page(d: &Decision) -> Markup {
    let dep = &d.request.deployment;
    let change = serde_json::to_string_pretty(&d.request.change).unwrap_or_default();
    page(
        &d.id,
        html! {
            h1 { "Decision " (d.id) " " (verdict_badge(d.verdict)) }
            dl.facts {
                dt { "Decided at" } dd { (time(d.decided_at)) }
                dt { "Deployment" } dd { (dep.service) " / " (dep.environment) " · version " (dep.version)
                    @if let Some(p) = &dep.previous_version { " (from " (p) ")" }
                    @if let Some(t) = dep.traffic_percent { " · " (plot::num(t)) " % traffic" } }
                @if !d.freezes.is_empty() { dt { "Manual freezes" } dd { (d.freezes.join(", ")) } }
                dt { "Chain" } dd { "record " (d.seq) " · hash " code title=(d.hash) { (&d.hash[..12.min(d.hash.len())]) "…" } }
            }
            h2 { "Why" }
            ul.reasons {
                @for r in &d.reasons {
                    li {
                        @if let Some(p) = &r.policy { strong { (p) } ": " }
                        (r.message)
                        @if let (Some(o), Some(t)) = (r.observed, r.threshold) {
                            span.detail { " (observed " (plot::num(o)) ", threshold " (plot::num(t)) ")" }
                        }
                    }
                }
            }
            h2 { "Policies" }
            table.policies {
                thead { tr { th scope="col" { "Binding" } th scope="col" { "Policy" } th scope="col" { "Mode" }
                    th scope="col" { "Outcome" } th scope="col" { "Fuel" } th scope="col" { "Time (µs)" } } }
                tbody {
                    @for p in &d.policies {
                        tr {
                            td { (p.binding) }
                            td { (p.name) " " (p.version) br; code title=(p.digest) { (&p.digest[..19.min(p.digest.len())]) "…" } }
                            td { (format!("{:?}", p.mode).to_lowercase()) }
                            td { (outcome(p)) }
                            td.num { (p.fuel_used) }
                            td.num { (p.duration_us) }
                        }
                    }
                }
            }
            h2 { "Evidence" }
            @if d.request.metrics.is_empty() { p.empty { "No metrics were sent or pulled." } }
            @for m in &d.request.metrics {
                section.metric aria-labelledby=(format!("m-{}", m.name)) {
                    h3 id=(format!("m-{}", m.name)) { (m.name) @if let Some(u) = &m.unit { " (" (u) ")" } }
                    @let marks = marks_for(d, m);
                    @match plot::plot(m, &marks) {
                        Some(svg) => (svg),
                        None => p.empty { "No samples." },
                    }
                    (summary_table(m))
                    @if let Some(pl) = &m.pulled {
                        details.pulled {
                            summary { "Pulled from " (pl.source) @if pl.diagnostic.is_some() { " — with a gap" } }
                            dl {
                                @if let Some(q) = &pl.baseline_query { dt { "Baseline query" } dd { code { (q) } } }
                                @if let Some(q) = &pl.canary_query { dt { "Canary query" } dd { code { (q) } } }
                                @if let Some(q) = &pl.value_query { dt { "Value query" } dd { code { (q) } } }
                                dt { "Range" } dd { @if let Some(s) = pl.start { (time(s)) " → " } (time(pl.end))
                                    @if let Some(step) = pl.step_seconds { " every " (step) " s" } }
                                dt { "Required" } dd { (pl.required) }
                                @if let Some(g) = &pl.diagnostic { dt { "Diagnostic" } dd.error { (g) } }
                            }
                        }
                    }
                }
            }
            h2 { "Change" }
            pre.change { (change) }
            h2 { "Replay" }
            p { a href=(format!("/ui/decisions/{}/replay", d.id)) { "Replay as recorded" }
                " — re-runs the recorded input with the recorded policy versions and settings; nothing is stored." }
        },
    )
}

/// The thresholds the policies named for `metric`, on the metric's own
/// scale. A reason's threshold can be a ratio or a score (canary-judge
/// compares canary/baseline), so it is drawn only when the value the
/// policy observed lies within the samples' range: then the threshold is
/// in the same unit as the dots.
fn marks_for(d: &Decision, metric: &crate::domain::Metric) -> Vec<plot::Mark> {
    let samples = metric
        .baseline
        .iter()
        .chain(&metric.canary)
        .chain(metric.value.as_ref())
        .copied()
        .filter(|v| v.is_finite());
    let (lo, hi) = samples.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let slack = (hi - lo).abs() * 0.1;
    let on_scale = |v: f64| v >= lo - slack && v <= hi + slack;
    let mut marks: Vec<plot::Mark> = Vec::new();
    let reasons = d
        .policies
        .iter()
        .flat_map(|p| p.reasons.iter().map(move |r| (p, r)));
    for (p, r) in reasons {
        if r.metric.as_deref() != Some(metric.name.as_str()) {
            continue;
        }
        let (Some(t), Some(observed)) = (r.threshold, r.observed) else {
            continue;
        };
        if !on_scale(observed) {
            continue;
        }
        let label = format!("threshold ({})", p.binding);
        if !marks.iter().any(|m| m.value == t && m.label == label) {
            marks.push(plot::Mark { value: t, label });
        }
    }
    marks
}

fn summary_table(m: &crate::domain::Metric) -> Markup {
    let rows: Vec<(&str, plot::Summary)> = [("baseline", &m.baseline), ("canary", &m.canary)]
        .into_iter()
        .filter_map(|(l, v)| plot::summary(v).map(|s| (l, s)))
        .collect();
    html! {
        @if !rows.is_empty() {
            table.summary {
                thead { tr { th scope="col" { "Series" } th scope="col" { "Samples" } th scope="col" { "Mean" }
                    th scope="col" { "Median" } th scope="col" { "p99" } } }
                tbody { @for (l, s) in &rows { tr { th scope="row" { (l) } td.num { (s.n) } td.num { (plot::num(s.mean)) }
                    td.num { (plot::num(s.p50)) } td.num { (plot::num(s.p99)) } } } }
            }
        }
        @if let Some(v) = m.value { p { "Value: " strong { (plot::num(v)) } } }
    }
}

/// GET /ui/decisions/{id}/replay: replay as recorded, show the diff.
pub async fn replay(app: App, id: String) -> Response {
    let how = ReplayRequest {
        policies: None,
        as_recorded: true,
    };
    match app.replay(&id, how).await {
        Ok(r) => html_response(
            StatusCode::OK,
            page(
                &format!("Replay of {id}"),
                html! {
                    h1 { "Replay of " a href=(format!("/ui/decisions/{id}")) { (id) } }
                    p { "Recorded " (verdict_badge(r.original_verdict)) ", replayed " (verdict_badge(r.replayed_verdict)) ". "
                        @if r.changed { strong.error { "The replay differs from the record." } }
                        @else { strong { "Identical: the recorded decision is reproducible." } } }
                    @if !r.diff.is_empty() {
                        table { thead { tr { th scope="col" { "Binding" } th scope="col" { "Recorded" } th scope="col" { "Replayed" } } }
                            tbody { @for d in &r.diff { tr { td { (d.binding) } td { (d.before.as_deref().unwrap_or("—")) }
                                td { (d.after.as_deref().unwrap_or("—")) } } } } }
                    }
                },
            ),
        ),
        Err(e) => service_error(e),
    }
}

// ----------------------------------------------------------------- chain ----

/// GET /ui/chain: verify, the latest checkpoint, freezes and bindings.
pub async fn chain(app: App) -> Response {
    let (report, checkpoint) = match (app.verify().await, app.checkpoint().await) {
        (Ok(r), Ok(c)) => (r, c),
        (Err(e), _) | (_, Err(e)) => return service_error(e),
    };
    let now = jiff::Timestamp::now();
    let freezes = app.all_freezes();
    let bindings = app.bindings();
    html_response(
        StatusCode::OK,
        page(
            "Chain",
            html! {
                h1 { "Audit chain" }
                @if report.ok {
                    p.ok { strong { "Verified: " } (report.checked) " records, every hash and link intact." }
                } @else if let Some(b) = &report.broken {
                    p.error role="alert" { strong { "Broken at record " (b.seq) " (" (b.id) "): " } (b.problem) }
                }
                @if let Some(h) = &report.head { p { "Head hash " code { (h) } } }
                h2 { "Latest signed checkpoint" }
                pre.checkpoint { (checkpoint) }
                p { "Verifier key " code { (app.checkpoint_verifier_key()) } }
                p.detail { "Keep checkpoints outside this server; "
                    code { "verdict audit verify --checkpoint FILE --key KEY" } " proves the chain still holds them." }
                h2 { "Freezes" }
                @if freezes.is_empty() { p.empty { "No manual freezes." } } @else {
                    table { thead { tr { th scope="col" { "Id" } th scope="col" { "Scope" } th scope="col" { "Reason" }
                        th scope="col" { "Until" } th scope="col" { "State" } th scope="col" { "By" } } }
                        tbody { @for f in &freezes { tr {
                            td { (f.id) }
                            td { (f.selector.service.as_deref().unwrap_or("any service")) " / " (f.selector.environment.as_deref().unwrap_or("any environment")) }
                            td { (f.reason) }
                            td { (time(f.until)) }
                            td { @if f.until > now { span.verdict.v-freeze { "active" } } @else { "expired" } }
                            td { (f.created_by.as_deref().unwrap_or("—")) }
                        } } } }
                }
                h2 { "Bindings" }
                table { thead { tr { th scope="col" { "Binding" } th scope="col" { "Policy" } th scope="col" { "Scope" }
                    th scope="col" { "Mode" } th scope="col" { "On error" } } }
                    tbody { @for (name, b) in &bindings { tr {
                        td { (name) } td { code { (b.policy) } }
                        td { (b.selector.service.as_deref().unwrap_or("any service")) " / " (b.selector.environment.as_deref().unwrap_or("any environment")) }
                        td { (format!("{:?}", b.mode).to_lowercase()) }
                        td { (format!("{:?}", b.on_error).to_lowercase()) }
                    } } } }
            },
        ),
    )
}

/// A `/ui/...` path no page has.
pub fn not_found() -> Response {
    error_page(StatusCode::NOT_FOUND, "No such page.")
}
