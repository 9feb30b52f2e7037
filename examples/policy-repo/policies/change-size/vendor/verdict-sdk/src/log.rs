//! The host's log sink. Lines end up in the decision's log on the host.
//!
//! Off wasm (native unit tests) there is no host, so logging is a no-op.

#[cfg(target_arch = "wasm32")]
use crate::bindings::verdict::policy::host::{log as host_log, Level};

#[cfg(target_arch = "wasm32")]
fn emit(level: Level, message: &str) {
    host_log(level, message);
}

#[cfg(not(target_arch = "wasm32"))]
fn emit<L>(_level: L, _message: &str) {}

#[cfg(target_arch = "wasm32")]
macro_rules! level {
    ($l:ident) => {
        Level::$l
    };
}
#[cfg(not(target_arch = "wasm32"))]
macro_rules! level {
    ($l:ident) => {
        ()
    };
}

pub fn debug(message: &str) {
    emit(level!(Debug), message)
}

pub fn info(message: &str) {
    emit(level!(Info), message)
}

pub fn warn(message: &str) {
    emit(level!(Warn), message)
}

pub fn error(message: &str) {
    emit(level!(Error), message)
}
