//! WASI for policies written in interpreted languages, denied by default.
//!
//! Python (componentize-py) and JavaScript (componentize-js) policies carry
//! an interpreter built against WASI 0.2: they import `wasi:cli`,
//! `wasi:clocks`, `wasi:filesystem`, `wasi:io`, `wasi:random` and
//! `wasi:sockets` even when the policy never touches a file or a socket. A
//! policy needs none of them, so the context each evaluation gets grants
//! nothing that could leak information in or out, or make a decision
//! depend on anything but its input:
//!
//! - no preopened directories (every path lookup fails), no environment,
//!   no arguments, stdin at end of file;
//! - sockets: every address is refused and name lookups are off;
//! - `wasi:http` is not linked at all: a component importing it is refused
//!   at upload, naming the import (see [`check_imports`]);
//! - stdout and stderr are captured into the policy's log, under the same
//!   caps as the `log` import;
//! - the clocks and random generators are functions of the decision, so a
//!   replay of a stored decision reproduces it exactly: the wall clock
//!   reads the decision time (`now-unix-ms`), the monotonic clock starts at
//!   0 and advances by a fixed step per reading (and jumps to the end of a
//!   sleep instead of sleeping, so a sleeping policy never holds a thread
//!   outside its deadline), and both random generators are SHA-256 in
//!   counter mode keyed by the SHA-256 of the input and the policy digest.
//!
//! Components importing no WASI (every Rust policy) never see any of this:
//! they are linked without WASI and their stores carry no WASI state.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{DynPollable, OutputStream, Pollable, StreamError};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::sandbox::HostState;
use super::wit::t;

/// The WASI packages a policy may import (all at 0.2.x). Anything else,
/// `wasi:http` included, is refused at upload.
const ALLOWED_WASI: &[&str] = &[
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
];

/// How far the monotonic clock moves at each reading: enough that code
/// measuring elapsed time sees time pass, the same on every run.
const MONOTONIC_STEP_NS: u64 = 1_000;

/// Bytes of stdout or stderr kept per stream and evaluation; the log caps
/// then apply to the lines made from them.
pub const MAX_CAPTURE_BYTES: usize = 8 * 1024;

/// What a component imports, as the sandbox sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imports {
    /// Only `verdict:policy`: linked without WASI.
    Policy,
    /// `verdict:policy` and WASI 0.2 interfaces: linked with the
    /// deny-by-default context.
    Wasi,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read the component's imports: {0}")]
    Unreadable(String),
    #[error(
        "the component imports `{0}`: outgoing HTTP is not available to policies \
         (a policy decides from its input alone; for componentize-js, build with \
         `-d http -d fetch-event`)"
    )]
    Http(String),
    #[error(
        "the component imports `{0}`: a policy may import only `verdict:policy/*` and \
         the WASI 0.2 interfaces wasi:cli, wasi:clocks, wasi:filesystem, wasi:io, \
         wasi:random and wasi:sockets"
    )]
    Forbidden(String),
    #[error(transparent)]
    Contract(#[from] super::contract::ContractError),
}

/// The top-level imports of a component, checked against what a policy may
/// import, before anything is compiled: refusing an 18 MB component after
/// half a minute of compiling would waste the time and hide the reason.
pub fn check_imports(bytes: &[u8]) -> Result<Imports, ImportError> {
    let imports = top_level_imports(bytes)?;
    // The contract version is named by type imports too (`types@…`).
    super::contract::check(imports.iter().map(|(name, _)| name.as_str()))?;
    let mut kind = Imports::Policy;
    for (name, is_type) in imports {
        // A world's `use` of a type becomes a type import: a name for a
        // type, no capability.
        if is_type || name.starts_with("verdict:policy/") {
            continue;
        }
        if name.starts_with("wasi:http/") {
            return Err(ImportError::Http(name));
        }
        let allowed = ALLOWED_WASI.iter().any(|p| name.starts_with(p))
            && name
                .split_once('@')
                .is_some_and(|(_, v)| v.starts_with("0.2."));
        if !allowed {
            return Err(ImportError::Forbidden(name));
        }
        kind = Imports::Wasi;
    }
    Ok(kind)
}

/// Import names of the outermost component (nested modules and components
/// have imports of their own, satisfied inside the component), each with
/// whether it imports a type only.
fn top_level_imports(bytes: &[u8]) -> Result<Vec<(String, bool)>, ImportError> {
    use wasmparser::{Parser, Payload};
    let mut depth = 0usize;
    let mut names = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| ImportError::Unreadable(e.to_string()))?;
        match payload {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| ImportError::Unreadable(e.to_string()))?;
                    let is_type = matches!(import.ty, wasmparser::ComponentTypeRef::Type(_));
                    names.push((import.name.name.to_string(), is_type));
                }
            }
            _ => {}
        }
    }
    Ok(names)
}

/// Add WASI 0.2 (synchronous bindings) to a linker that already has the
/// policy world, with the monotonic clock replaced by the virtual one.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    linker.allow_shadowing(true);
    monotonic_clock::add_to_linker::<HostState, VirtualMonotonic>(linker, |s| {
        let w = s.wasi_mut();
        MonotonicView {
            now: &mut w.monotonic_ns,
            table: &mut w.table,
        }
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

/// What a call's WASI context derives its clocks and randomness from.
#[derive(Debug, Clone, Copy)]
pub struct Determinism {
    /// The wall clock's reading, ms since the Unix epoch.
    pub now_unix_ms: i64,
    /// Key of the random generators.
    pub seed: [u8; 32],
}

impl Determinism {
    /// For `evaluate`: the decision time and the SHA-256 of the input (its
    /// settings included) and the policy digest.
    pub fn for_input(input: &t::Input, digest: &str) -> Determinism {
        Determinism {
            now_unix_ms: input.now_unix_ms,
            seed: input_seed(input, digest),
        }
    }

    /// For calls without an input (`describe`, `validate-settings`): the
    /// epoch, and a seed from what the call is given.
    pub fn for_call(what: &str, argument: &str, digest: &str) -> Determinism {
        let mut h = Sha256::new();
        for part in [what, argument, digest] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        Determinism {
            now_unix_ms: 0,
            seed: h.finalize().into(),
        }
    }
}

/// A canonical, length-prefixed encoding of the input, hashed: the same
/// input always gives the same seed, whatever version of the host, and two
/// different inputs cannot encode alike.
fn input_seed(input: &t::Input, digest: &str) -> [u8; 32] {
    struct Enc(Sha256);
    impl Enc {
        fn str(&mut self, s: &str) {
            self.0.update((s.len() as u64).to_le_bytes());
            self.0.update(s.as_bytes());
        }
        fn opt(&mut self, s: &Option<String>) {
            match s {
                Some(s) => {
                    self.0.update([1]);
                    self.str(s);
                }
                None => self.0.update([0]),
            }
        }
        fn f64(&mut self, x: f64) {
            self.0.update(x.to_bits().to_le_bytes());
        }
        fn optf(&mut self, x: Option<f64>) {
            match x {
                Some(x) => {
                    self.0.update([1]);
                    self.f64(x);
                }
                None => self.0.update([0]),
            }
        }
        fn list(&mut self, xs: &[String]) {
            self.0.update((xs.len() as u64).to_le_bytes());
            for x in xs {
                self.str(x);
            }
        }
        fn nums(&mut self, xs: &[f64]) {
            self.0.update((xs.len() as u64).to_le_bytes());
            for &x in xs {
                self.f64(x);
            }
        }
    }
    let mut e = Enc(Sha256::new());
    e.str("verdict-wasi-seed-v1");
    e.str(digest);
    let d = &input.deployment;
    e.str(&d.service);
    e.str(&d.environment);
    e.str(&d.version);
    e.opt(&d.previous_version);
    e.opt(&d.region);
    e.opt(&d.stage);
    e.optf(d.traffic_percent);
    let c = &input.change;
    e.opt(&c.commit);
    e.opt(&c.author);
    e.opt(&c.title);
    e.0.update(c.files_changed.to_le_bytes());
    e.0.update(c.lines_added.to_le_bytes());
    e.0.update(c.lines_removed.to_le_bytes());
    e.list(&c.paths);
    e.list(&c.labels);
    e.opt(&c.ticket);
    e.opt(&c.risk);
    e.0.update((input.metrics.len() as u64).to_le_bytes());
    for m in &input.metrics {
        e.str(&m.name);
        e.opt(&m.unit);
        e.nums(&m.baseline);
        e.nums(&m.canary);
        e.optf(m.value);
    }
    e.0.update(input.now_unix_ms.to_le_bytes());
    e.str(&input.settings);
    e.0.finalize().into()
}

/// The WASI half of a store's state (only for components that import WASI).
pub struct WasiState {
    ctx: WasiCtx,
    table: ResourceTable,
    monotonic_ns: u64,
    stdout: Capture,
    stderr: Capture,
}

impl WasiState {
    pub fn new(d: Determinism) -> WasiState {
        let stdout = Capture::default();
        let stderr = Capture::default();
        let mut b = WasiCtxBuilder::new();
        // No preopens, env or args: the builder's defaults. Spelled out for
        // what the defaults do not already deny.
        b.stdin(tokio::io::empty())
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false)
            .wall_clock(FixedWallClock(d.now_unix_ms))
            .monotonic_clock(ZeroMonotonic)
            .secure_random(SeededRandom::new(d.seed, b"secure"))
            .insecure_random(SeededRandom::new(d.seed, b"insecure"))
            .insecure_random_seed(u128::from_le_bytes(
                SeededRandom::new(d.seed, b"insecure-seed").block()[..16]
                    .try_into()
                    .expect("16 bytes"),
            ))
            // The guest's buffer is limited by its memory; a request for
            // more than this is a misbehaving policy, refused with a trap.
            .max_random_size(1 << 20);
        WasiState {
            ctx: b.build(),
            table: ResourceTable::new(),
            monotonic_ns: 0,
            stdout,
            stderr,
        }
    }

    /// What the policy wrote to stdout and stderr, as log lines (`stdout:
    /// …`), and how many bytes were cut at the capture cap.
    pub fn output(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (name, capture) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let c = capture.0.lock().unwrap_or_else(|e| e.into_inner());
            let text = String::from_utf8_lossy(&c.bytes);
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                lines.push(format!("{name}: {line}"));
            }
            if c.dropped > 0 {
                lines.push(format!(
                    "{name}: ({} more bytes dropped; at most {MAX_CAPTURE_BYTES} are kept)",
                    c.dropped
                ));
            }
        }
        lines
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let w = self.wasi_mut();
        WasiCtxView {
            ctx: &mut w.ctx,
            table: &mut w.table,
        }
    }
}

/// The wall clock: always the decision time.
struct FixedWallClock(i64);

impl wasmtime_wasi::HostWallClock for FixedWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }
    fn now(&self) -> Duration {
        // Before the epoch cannot be expressed in WASI's datetime; a
        // decision time is never before it, and 0 is the safe floor.
        Duration::from_millis(u64::try_from(self.0).unwrap_or(0))
    }
}

/// wasmtime-wasi's own monotonic clock slot; the interface itself is served
/// by [`VirtualMonotonic`], so this is never read by a guest, only kept
/// deterministic in case the library reads it.
struct ZeroMonotonic;

impl wasmtime_wasi::HostMonotonicClock for ZeroMonotonic {
    fn resolution(&self) -> u64 {
        MONOTONIC_STEP_NS
    }
    fn now(&self) -> u64 {
        0
    }
}

/// `wasi:clocks/monotonic-clock` on virtual time.
struct VirtualMonotonic;

impl HasData for VirtualMonotonic {
    type Data<'a> = MonotonicView<'a>;
}

struct MonotonicView<'a> {
    now: &'a mut u64,
    table: &'a mut ResourceTable,
}

/// A pollable that is always ready: a sleep on virtual time has already
/// ended when it is polled.
struct Ready;

#[wasmtime_wasi::async_trait]
impl Pollable for Ready {
    async fn ready(&mut self) {}
}

impl MonotonicView<'_> {
    fn ready(&mut self) -> wasmtime::Result<Resource<DynPollable>> {
        let r = self.table.push(Ready)?;
        wasmtime_wasi::p2::subscribe(self.table, r)
    }
}

impl monotonic_clock::Host for MonotonicView<'_> {
    fn now(&mut self) -> wasmtime::Result<u64> {
        let now = *self.now;
        *self.now = now.saturating_add(MONOTONIC_STEP_NS);
        Ok(now)
    }

    fn resolution(&mut self) -> wasmtime::Result<u64> {
        Ok(MONOTONIC_STEP_NS)
    }

    fn subscribe_instant(&mut self, when: u64) -> wasmtime::Result<Resource<DynPollable>> {
        *self.now = (*self.now).max(when);
        self.ready()
    }

    fn subscribe_duration(&mut self, duration: u64) -> wasmtime::Result<Resource<DynPollable>> {
        *self.now = self.now.saturating_add(duration);
        self.ready()
    }
}

/// SHA-256 in counter mode under a key derived from the decision's seed
/// and a label (so the secure and insecure streams differ).
struct SeededRandom {
    key: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl SeededRandom {
    fn new(seed: [u8; 32], label: &[u8]) -> SeededRandom {
        let mut h = Sha256::new();
        h.update(seed);
        h.update(label);
        SeededRandom {
            key: h.finalize().into(),
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }

    /// The next 32-byte block of the stream.
    fn block(&mut self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(self.counter.to_le_bytes());
        self.counter += 1;
        h.finalize().into()
    }
}

impl rand_core::TryRng for SeededRandom {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for byte in dst {
            if self.used == self.block.len() {
                self.block = self.block();
                self.used = 0;
            }
            *byte = self.block[self.used];
            self.used += 1;
        }
        Ok(())
    }
}

/// A capped in-memory sink for stdout or stderr. Writes past the cap are
/// accepted and counted, never refused: a chatty policy is not a failed one.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Captured>>);

#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    dropped: usize,
}

impl Capture {
    fn write(&self, data: &[u8]) {
        let mut c = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let room = MAX_CAPTURE_BYTES.saturating_sub(c.bytes.len());
        let kept = room.min(data.len());
        c.bytes.extend_from_slice(&data[..kept]);
        c.dropped += data.len() - kept;
    }
}

impl wasmtime_wasi::cli::IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        Capture::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Capture::write(&self, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::Rng;

    fn component(wat: &str) -> Vec<u8> {
        wat::parse_str(wat).unwrap()
    }

    #[test]
    fn imports_are_sorted_into_policy_wasi_or_refused_by_name() {
        let policy = component(r#"(component (import "verdict:policy/host@0.1.0" (instance)))"#);
        assert_eq!(check_imports(&policy), Ok(Imports::Policy));
        let wasi = component(
            r#"(component
                 (import "verdict:policy/host@0.1.0" (instance))
                 (import "wasi:io/poll@0.2.9" (instance))
                 (import "wasi:sockets/tcp@0.2.12" (instance)))"#,
        );
        assert_eq!(check_imports(&wasi), Ok(Imports::Wasi));
        let http =
            component(r#"(component (import "wasi:http/outgoing-handler@0.2.3" (instance)))"#);
        let err = check_imports(&http).unwrap_err().to_string();
        assert!(
            err.contains("`wasi:http/outgoing-handler@0.2.3`") && err.contains("HTTP"),
            "{err}"
        );
        for other in [
            "acme:secrets/vault@1.0.0",
            "wasi:io/poll@0.3.0",
            "wasi:keyvalue/store@0.2.0",
        ] {
            let c = component(&format!(r#"(component (import "{other}" (instance)))"#));
            let err = check_imports(&c).unwrap_err().to_string();
            assert!(err.contains(&format!("`{other}`")), "{err}");
        }
    }

    #[test]
    fn imports_of_nested_components_are_not_the_policys() {
        let nested = component(
            r#"(component
                 (import "verdict:policy/host@0.1.0" (instance))
                 (component (import "acme:inner/thing@1.0.0" (instance))))"#,
        );
        assert_eq!(check_imports(&nested), Ok(Imports::Policy));
    }

    #[test]
    fn random_streams_are_a_function_of_the_seed_and_label() {
        let fill = |seed: [u8; 32], label: &[u8]| {
            let mut r = SeededRandom::new(seed, label);
            let mut buf = [0u8; 100];
            r.fill_bytes(&mut buf);
            (buf, r.next_u64())
        };
        assert_eq!(fill([1; 32], b"secure"), fill([1; 32], b"secure"));
        assert_ne!(fill([1; 32], b"secure"), fill([2; 32], b"secure"));
        assert_ne!(fill([1; 32], b"secure"), fill([1; 32], b"insecure"));
        // Not a short repeating cycle: blocks differ.
        let (buf, _) = fill([1; 32], b"secure");
        assert_ne!(buf[..32], buf[32..64]);
    }

    fn input() -> t::Input {
        t::Input {
            deployment: t::Deployment {
                service: "checkout".into(),
                environment: "prod".into(),
                version: "v2".into(),
                previous_version: None,
                region: None,
                stage: None,
                traffic_percent: Some(5.0),
            },
            change: t::Change {
                commit: None,
                author: None,
                title: None,
                files_changed: 1,
                lines_added: 2,
                lines_removed: 3,
                paths: vec!["a".into()],
                labels: vec![],
                ticket: None,
                risk: None,
            },
            metrics: vec![t::Metric {
                name: "errors".into(),
                unit: None,
                baseline: vec![1.0],
                canary: vec![2.0],
                value: None,
            }],
            now_unix_ms: 1_700_000_000_000,
            settings: "{}".into(),
        }
    }

    #[test]
    fn the_seed_changes_with_every_part_of_the_input_and_the_digest() {
        let base = Determinism::for_input(&input(), "sha256:aa");
        assert_eq!(
            base.seed,
            Determinism::for_input(&input(), "sha256:aa").seed
        );
        assert_eq!(base.now_unix_ms, 1_700_000_000_000);
        assert_ne!(
            base.seed,
            Determinism::for_input(&input(), "sha256:bb").seed
        );
        let mut i = input();
        i.settings = r#"{"x":1}"#.into();
        assert_ne!(base.seed, Determinism::for_input(&i, "sha256:aa").seed);
        let mut i = input();
        i.metrics[0].canary = vec![2.5];
        assert_ne!(base.seed, Determinism::for_input(&i, "sha256:aa").seed);
        let mut i = input();
        i.now_unix_ms += 1;
        assert_ne!(base.seed, Determinism::for_input(&i, "sha256:aa").seed);
        // Moving a string between neighbouring fields changes the encoding.
        let mut a = input();
        a.deployment.service = "check".into();
        a.deployment.environment = "outprod".into();
        assert_ne!(base.seed, Determinism::for_input(&a, "sha256:aa").seed);
    }

    #[test]
    fn the_virtual_monotonic_clock_starts_at_zero_and_sleeps_without_waiting() {
        let mut now = 0u64;
        let mut table = ResourceTable::new();
        let mut view = MonotonicView {
            now: &mut now,
            table: &mut table,
        };
        use monotonic_clock::Host;
        assert_eq!(view.now().unwrap(), 0);
        assert_eq!(view.now().unwrap(), MONOTONIC_STEP_NS);
        let started = std::time::Instant::now();
        // An hour's sleep ends at once, an hour later in virtual time.
        view.subscribe_duration(3_600_000_000_000).unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(
            view.now().unwrap(),
            2 * MONOTONIC_STEP_NS + 3_600_000_000_000
        );
        view.subscribe_instant(5).unwrap();
        assert!(
            view.now().unwrap() > 3_600_000_000_000,
            "time never goes back"
        );
    }

    #[test]
    fn captured_output_is_capped_and_the_rest_counted() {
        let c = Capture::default();
        c.write(b"hello\nworld\n");
        c.write(&vec![b'x'; MAX_CAPTURE_BYTES]);
        let d = Determinism::for_call("describe", "", "sha256:aa");
        let mut state = WasiState::new(d);
        state.stdout = c;
        let out = state.output();
        assert_eq!(out[0], "stdout: hello");
        assert_eq!(out[1], "stdout: world");
        assert!(
            out.last().unwrap().contains("12 more bytes dropped"),
            "{out:?}"
        );
    }
}
