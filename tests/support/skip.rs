//! What a test does when something it needs from outside the build is missing here (a
//! PostgreSQL server, chromedriver, a validator, a command-line tool): on a developer's
//! machine it says so and passes; with `CI=true` (as CI services and `.ci/run` set it)
//! it fails, so a CI set-up that lost a tool cannot pass by running nothing.
//!
//! Self-contained, so that a suite without the rest of the support (tests/manifests.rs)
//! and the library's own tests can include it by path.

/// Whether the tests run on CI: `CI` is `true` (any case) or `1`.
pub fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The calling test cannot run because `missing` (what is missing, and how to get it):
/// with `CI=true` this panics; otherwise it prints `skipped: {missing}` and the caller
/// returns.
#[track_caller]
pub fn skip_unless_ci(missing: &str) {
    assert!(
        !on_ci(),
        "{missing}; CI=true, so this test fails instead of being skipped"
    );
    eprintln!("skipped: {missing}");
}
