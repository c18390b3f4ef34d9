//! End-to-end tests: the real application on port 0 with its own database, the
//! sandbox as upstream, driven over real HTTP and gRPC.

mod helpers;
#[path = "../support/mod.rs"]
mod support;

mod audit;
mod auth;
mod billmgr;
mod billmgr_security;
mod browser;
mod catalog;
mod connections;
mod console;
mod console_security;
mod costs;
mod doctor;
mod drift;
mod errors;
mod feed;
mod health;
mod idempotency;
mod json_mapping;
mod lifecycle;
mod limits;
mod listing;
mod observability;
mod one_per_ip;
mod ordering;
mod panels;
mod pool;
mod readme;
mod resolve;
mod secrets;
mod spend;
mod tls;
mod tracing;
mod upstream;
mod validation;
mod webhooks;
mod whmcs;
