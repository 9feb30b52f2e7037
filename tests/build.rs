//! `VERDICT_SKIP_PROMETHEUS=1` (set and non-empty) compiles the tests that
//! need Debian's `prometheus` package (the `prometheus` server and
//! `promtool`) as `#[ignore]`d, so libtest reports them as ignored instead of
//! letting them pass without running. The switch is read at build time; cargo
//! rebuilds the tests when it changes. CI (`.ci/run`) refuses it.

fn main() {
    println!("cargo:rustc-check-cfg=cfg(verdict_skip_prometheus)");
    println!("cargo:rerun-if-env-changed=VERDICT_SKIP_PROMETHEUS");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("VERDICT_SKIP_PROMETHEUS").is_some_and(|v| !v.is_empty()) {
        println!("cargo:rustc-cfg=verdict_skip_prometheus");
    }
    // Likewise `VERDICT_SKIP_POLYGLOT=1` for the tests that need the Python
    // and JavaScript components `make polyglot` builds (componentize-py and
    // componentize-js); CI builds them and runs the tests.
    println!("cargo:rustc-check-cfg=cfg(verdict_skip_polyglot)");
    println!("cargo:rerun-if-env-changed=VERDICT_SKIP_POLYGLOT");
    if std::env::var_os("VERDICT_SKIP_POLYGLOT").is_some_and(|v| !v.is_empty()) {
        println!("cargo:rustc-cfg=verdict_skip_polyglot");
    }
    // And `VERDICT_SKIP_POSTGRES=1` for the replica tests, which start
    // throw-away clusters from Debian's `postgresql` package.
    println!("cargo:rustc-check-cfg=cfg(verdict_skip_postgres)");
    println!("cargo:rerun-if-env-changed=VERDICT_SKIP_POSTGRES");
    if std::env::var_os("VERDICT_SKIP_POSTGRES").is_some_and(|v| !v.is_empty()) {
        println!("cargo:rustc-cfg=verdict_skip_postgres");
    }
}
