//! The five example policies, compiled to components from `policies/` and
//! committed under `policies/dist/`, embedded in the binary so `verdict serve`
//! works with zero configuration and no wasm toolchain. CI rebuilds them
//! from source and runs every fixture against both the rebuilt and the
//! embedded copies, so a stale binary cannot hide.

use jiff::Timestamp;

use crate::domain::{Binding, Limits, Mode, OnError, Selector};
use crate::engine::{Engine, EngineError};

/// One embedded policy: registry name and component bytes.
pub struct Builtin {
    pub name: &'static str,
    pub component: &'static [u8],
    /// Fixture directory, relative to the repository root (for tests and docs).
    pub fixtures: &'static str,
}

macro_rules! builtin {
    ($name:literal) => {
        Builtin {
            name: $name,
            component: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../policies/dist/",
                $name,
                ".wasm"
            )),
            fixtures: concat!("policies/", $name, "/fixtures"),
        }
    };
}

pub const BUILTINS: [Builtin; 5] = [
    builtin!("canary-judge"),
    builtin!("error-budget"),
    builtin!("freeze-window"),
    builtin!("change-risk"),
    builtin!("thresholds"),
];

/// The default binding of a built-in: applies to every deployment, enforcing,
/// default settings and limits, hold on error. Each built-in abstains when a
/// request carries none of its inputs, so binding all five is safe.
pub fn default_binding(name: &str) -> Binding {
    Binding {
        policy: name.to_string(),
        selector: Selector::default(),
        mode: Mode::Enforce,
        on_error: OnError::Hold,
        settings: serde_json::Value::Object(Default::default()),
        limits: Limits::default(),
    }
}

/// Register the built-ins in `engine` and bind each to everything.
pub fn install(engine: &Engine, now: Timestamp) -> Result<(), EngineError> {
    for b in &BUILTINS {
        engine.add_policy(b.name, b.component, now)?;
        engine.put_binding(b.name, default_binding(b.name))?;
    }
    Ok(())
}
