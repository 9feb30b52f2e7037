//! Runs every `fixtures/*.json` natively through the policy's exports, the way
//! `verdict policy test` runs them through the sandbox, so a fixture that no
//! longer matches the code fails `cargo test` too (see `verdict_sdk::testing`).

#[test]
fn fixtures_pass() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    let n = verdict_sdk::testing::run_fixtures::<change_risk::ChangeRisk>(dir);
    assert!(n >= 8, "expected at least 8 fixtures in {dir}");
}
