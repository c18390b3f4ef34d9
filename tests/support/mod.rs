//! Test support shared by the suites that run the real service: the sandbox
//! BILLmanager in the test process, a PostgreSQL database per test, a REST client, the
//! application in this process, and the `license-facade serve` binary as a child
//! process that can be aborted, killed and restarted.
//!
//! Each suite includes this module with `#[path = "../support/mod.rs"] mod support;`
//! and uses the part it needs, so what one suite leaves unused is not dead code.
#![allow(dead_code, unused_imports)]

mod api;
mod child;
mod db;
mod in_process;
mod pki;
mod receiver;
mod replica_set;
mod sandbox;
mod skip;
mod stuck;

pub use api::*;
pub use child::*;
pub use db::*;
pub use in_process::*;
pub use pki::*;
pub use receiver::*;
pub use replica_set::*;
pub use sandbox::*;
pub use skip::*;
pub use stuck::*;

use std::time::Duration;

/// How long any wait in these tests may take before it is a failure.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The bearer token of the one API client every service in these tests knows.
pub const TOKEN: &str = license_facade::auth::SANDBOX_TOKEN;

pub fn init() {
    // reqwest is built without a default TLS provider; tests install ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if std::env::var_os("TEST_LOG").is_some() {
        license_facade::telemetry::init();
    }
}

/// An HTTP client builder for plain-HTTP calls to a service or the sandbox. Without
/// `tls_certs_only`, building a client parses the system's whole CA bundle (the
/// platform verifier's roots), which in a debug build costs more CPU than most of the
/// calls the client then makes; the slow tier builds thousands of them.
pub fn http_client() -> reqwest::ClientBuilder {
    init();
    reqwest::Client::builder().tls_certs_only([])
}

/// The clients file text of the one test client: token [`TOKEN`], every scope, no
/// request-rate limit (the load tests are bursty on purpose), and `limits` (TOML
/// lines, e.g. a spend cap).
pub fn clients_toml(limits: &str) -> String {
    client_toml(
        "tests",
        TOKEN,
        r#"["admin"]"#,
        &format!("max_requests_per_second = 0\n{limits}"),
    )
}

/// Clients besides the test client that an in-process application also knows, each
/// calling with the token `{name}-token`, reading and writing its own licenses, with
/// no cap and no request-rate limit: rivals of each other for the same addresses.
pub const RIVALS: [&str; 2] = ["north", "south"];

/// The clients file text of [`RIVALS`].
pub fn rivals_toml() -> String {
    RIVALS
        .iter()
        .map(|name| {
            client_toml(
                name,
                &format!("{name}-token"),
                r#"["licenses.read", "licenses.write"]"#,
                "max_requests_per_second = 0",
            )
        })
        .collect()
}

/// One `[[client]]` entry: `name`, calling with `token`, its `scopes` (a TOML array)
/// and `limits` (TOML lines).
pub fn client_toml(name: &str, token: &str, scopes: &str, limits: &str) -> String {
    format!(
        "[[client]]\n\
         name = \"{name}\"\n\
         token_sha256 = \"{}\"\n\
         scopes = {scopes}\n{limits}\n",
        license_facade::auth::token_sha256_hex(token)
    )
}

/// Clients `(name, scopes, limits)`, each calling with the token `{name}-token`: for
/// the tests about who may do what.
pub fn named_clients(entries: &[(&str, &str, &str)]) -> license_facade::auth::Clients {
    let text: String = entries
        .iter()
        .map(|(name, scopes, limits)| client_toml(name, &format!("{name}-token"), scopes, limits))
        .collect();
    license_facade::auth::Clients::from_toml(&text).expect("valid clients")
}
