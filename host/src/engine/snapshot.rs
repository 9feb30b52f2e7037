//! Pre-initialised snapshots: a binding's guest start-up paid once per
//! binding instead of once per evaluation.
//!
//! Why: every evaluation runs in a fresh instance (no state may pass from
//! one decision to the next), and a fresh instance of a Rust policy used to
//! spend most of its time before deciding anything: initialising its
//! allocator, faulting in pages and parsing the binding's settings. A
//! component that exports `preinit` (the Rust SDK's do; see
//! `wit/preinit.wit`) is instead instantiated once with wizer's
//! instrumentation, `preinit(settings)` runs in it, and wizer writes its
//! memory and globals back into a new component: the snapshot. Evaluations
//! of the binding instantiate the snapshot, still fresh every time, whose
//! memory image (mapped copy-on-write by the pooling allocator) already
//! holds the parsed settings and a warm allocator.
//!
//! INVARIANT: a snapshot is a pure function of (component digest, settings,
//! limits): `preinit` sees nothing else (no clock, no randomness: only
//! components importing nothing but `verdict:policy` are pre-initialised),
//! so a replay rebuilds the very snapshot a decision ran from, and a
//! snapshot is keyed by exactly those three. The guest keeps a settings
//! document it prepared only for that same document (`prepared` in the
//! SDK), so an evaluation from a snapshot answers what an evaluation
//! without one answers; only the fuel differs, as the start-up is no longer
//! counted.
//!
//! Snapshots are built in the background, one at a time, once a binding has
//! been evaluated [`BUILD_AFTER`] times (building one costs two compiles, a
//! waste for a binding used once or twice); until one is ready (or if
//! building it failed) the binding runs from its plain component, with the
//! same outcome.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use wasmtime::component::{Component, Instance, Lift, WasmList};
use wasmtime::Store;
use wasmtime_wizer::{ComponentInstanceState, Wizer};

use super::sandbox::HostState;
use super::wit::PolicyPre;
use crate::domain::Limits;

/// The export a pre-initialisable component provides (`wit/preinit.wit`).
pub const PREINIT: &str = "preinit";

/// Evaluations of a binding after which its snapshot is queued.
pub const BUILD_AFTER: u32 = 8;

/// Most snapshots kept: one per binding in use, plus replays of older
/// settings. Past this, new ones are not built (evaluations still run, from
/// the plain component).
pub const MAX_SNAPSHOTS: usize = 1024;

/// Whether `component` exports `preinit: func(settings: string)`.
pub fn has_preinit(component: &Component) -> bool {
    use wasmtime::component::types::{ComponentItem, Type};
    match component.get_export(None, PREINIT) {
        Some((ComponentItem::ComponentFunc(f), _)) => {
            let params: Vec<Type> = f.params().map(|(_, t)| t).collect();
            matches!(params.as_slice(), [Type::String]) && f.results().len() == 0
        }
        _ => false,
    }
}

/// What identifies a snapshot: the component, the settings `preinit` ran
/// with, and the limits it ran under (a snapshot grown past a binding's
/// memory limit must not serve that binding).
pub fn key(digest: &str, settings: &str, limits: &Limits) -> String {
    // NUL never occurs in a digest or in the Debug form of the limits, so
    // no two triples share a key.
    format!("{digest}\0{limits:?}\0{settings}")
}

/// The state of one snapshot.
pub enum State {
    /// Evaluated this many times without a snapshot, not yet queued.
    Seen(u32),
    /// Queued or being built.
    Building,
    Ready(Arc<PolicyPre<HostState>>),
    /// Building failed; not retried (it is a pure function of its key, so it
    /// would fail again). The binding runs from its plain component.
    Failed,
}

/// Every snapshot this runtime knows of, by [`key`].
#[derive(Default)]
pub struct Snapshots {
    states: HashMap<String, State>,
}

impl Snapshots {
    /// The ready snapshot for `key`; `None` if there is none (yet).
    pub fn ready(&self, key: &str) -> Option<Arc<PolicyPre<HostState>>> {
        match self.states.get(key) {
            Some(State::Ready(pre)) => Some(pre.clone()),
            _ => None,
        }
    }

    /// Count one evaluation of `key` without a snapshot; whether it should
    /// be queued for building now (then it is marked as building).
    pub fn note(&mut self, key: &str) -> bool {
        let full = self.states.len() >= MAX_SNAPSHOTS;
        let seen = match self.states.get_mut(key) {
            Some(State::Seen(n)) => {
                *n += 1;
                *n
            }
            Some(_) => return false,
            None if full => return false,
            None => {
                self.states.insert(key.to_string(), State::Seen(1));
                1
            }
        };
        if seen < BUILD_AFTER {
            return false;
        }
        self.states.insert(key.to_string(), State::Building);
        true
    }

    pub fn finish(&mut self, key: String, state: State) {
        self.states.insert(key, state);
    }

    /// Whether `key` is still being built.
    pub fn building(&self, key: &str) -> bool {
        matches!(self.states.get(key), Some(State::Building))
    }
}

/// Wizer set up for the Verdict world: `preinit` is the initialisation
/// function. It stays exported in the snapshot: wizer's rewrite would drop
/// the core export the component's own `canon lift` of `preinit` refers to,
/// leaving an invalid component; the host never calls it on a snapshot.
pub fn wizer() -> Wizer {
    let mut w = Wizer::new();
    w.init_func(PREINIT).keep_init_func(true);
    w
}

/// Read the instrumented instance's state for wizer. Every call is to an
/// accessor wizer's instrumentation added (a read of a global or a memory),
/// never to the policy's own code.
pub struct Access<'a> {
    pub store: &'a mut Store<HostState>,
    pub instance: Instance,
}

impl Access<'_> {
    fn call<R, T>(&mut self, instance: &str, func: &str, use_ret: impl FnOnce(&Self, R) -> T) -> T
    where
        R: Lift + wasmtime::component::ComponentType + 'static,
    {
        // Wizer's trait offers no error path: a failure here means the
        // instrumentation did not produce what wizer itself asked for, which
        // is a bug; the builder catches the panic and gives up the snapshot.
        let (_, outer) = self
            .instance
            .get_export(&mut *self.store, None, instance)
            .expect("wizer's accessor instance is exported");
        let (_, export) = self
            .instance
            .get_export(&mut *self.store, Some(&outer), func)
            .expect("wizer's accessor is exported");
        let f = self
            .instance
            .get_typed_func::<(), (R,)>(&mut *self.store, export)
            .expect("wizer's accessor has the type wizer gave it");
        let (ret,) = f
            .call(&mut *self.store, ())
            .expect("wizer's accessor does not trap");
        use_ret(self, ret)
    }
}

impl ComponentInstanceState for Access<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        self.call(instance, func, |this, list: WasmList<u8>| {
            contents(list.as_le_slice(&*this.store))
        })
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func, |_, r| r)
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func, |_, r| r)
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call(instance, func, |_, r: f32| r.to_bits())
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call(instance, func, |_, r: f64| r.to_bits())
    }
}

/// Drive a future that never waits to completion. Wizer's snapshot API is
/// async because it can sit on an async store; ours is synchronous, so every
/// await inside completes on the first poll.
pub fn now<F: Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binding_is_queued_once_after_enough_evaluations() {
        let mut s = Snapshots::default();
        for _ in 1..BUILD_AFTER {
            assert!(!s.note("k"));
        }
        assert!(s.note("k"));
        assert!(s.building("k"));
        // Queued once: later evaluations while it builds queue nothing.
        assert!(!s.note("k"));
        s.finish("k".into(), State::Failed);
        assert!(!s.note("k"));
        assert!(s.ready("k").is_none());
    }

    #[test]
    fn keys_differ_in_each_part() {
        let l = Limits::default();
        let tight = Limits {
            memory_bytes: 1 << 20,
            ..l
        };
        let a = key("sha256:aa", "{}", &l);
        assert_ne!(a, key("sha256:ab", "{}", &l));
        assert_ne!(a, key("sha256:aa", "{ }", &l));
        assert_ne!(a, key("sha256:aa", "{}", &tight));
    }

    fn component(export: &str) -> Component {
        let wat = format!(
            r#"(component
                (core module $m
                  (memory (export "memory") 1)
                  (func (export "f") (param i32 i32))
                  (func (export "g") (param i32))
                  (func (export "realloc") (param i32 i32 i32 i32) (result i32) i32.const 0))
                (core instance $i (instantiate $m))
                (alias core export $i "memory" (core memory $mem))
                (alias core export $i "realloc" (core func $realloc))
                (core func $f (alias core export $i "f"))
                (core func $g (alias core export $i "g"))
                {export})"#
        );
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        let engine = wasmtime::Engine::new(&config).unwrap();
        Component::new(&engine, wat).unwrap()
    }

    #[test]
    fn only_a_preinit_taking_the_settings_string_counts() {
        let string = r#"(func (export "preinit") (param "settings" string)
            (canon lift (core func $f) (memory $mem) (realloc $realloc)))"#;
        let number = r#"(func (export "preinit") (param "n" u32) (canon lift (core func $g)))"#;
        let other = r#"(func (export "init") (param "settings" string)
            (canon lift (core func $f) (memory $mem) (realloc $realloc)))"#;
        assert!(has_preinit(&component(string)));
        assert!(!has_preinit(&component(number)));
        assert!(!has_preinit(&component(other)));
    }

    #[test]
    fn a_future_that_never_waits_completes() {
        assert_eq!(now(async { 7 }), Some(7));
        assert_eq!(now(std::future::pending::<()>()), None);
    }
}
