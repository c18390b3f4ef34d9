//! license-facade: a gRPC + REST service that orders and manages ISPmanager licenses
//! on BILLmanager exactly once.
//!
//! Layers, outermost first (docs/architecture.md has who may import whom; the
//! `layering` unit test checks it):
//! - [`grpc`] and [`http`]: thin transports over [`service`], served on the bounded
//!   connections of [`listener`]; [`downstream`], the shop's own `/billmgr` API, and
//!   the [`console`] share the HTTP listener, composed beside the REST API in
//!   [`startup`]; [`edge`] is what the transports share at their edge;
//! - [`service`]: the use cases; they store paid work and read its results;
//! - [`workflow`]: the runner and the one attempt engine that carries every paid step
//!   out upstream exactly once;
//! - [`domain`]: validated values, the license, the panel catalog;
//! - [`store`]: persistence behind the `Store` trait;
//! - [`billmanager`]: the upstream client behind the `Billmanager` trait;
//! - [`sandbox`]: a BILLmanager simulator for demos and tests;
//! - [`watcher`]: the VMmanager 6 / DCImanager 6 integration, a client of the gRPC API
//!   that keeps one license on every marked server; [`platform`] holds its platform
//!   adapters and their simulator;
//! - `protocol`: the BILLmanager request and answer format (the order form included),
//!   written and read by the client, the sandbox and the downstream endpoint.

pub mod api;
pub mod auth;
pub mod billmanager;
pub mod cli;
pub mod config;
pub mod console;
pub mod crash;
pub mod demo_platform;
pub mod doctor;
pub mod domain;
pub mod downstream;
pub mod edge;
pub mod grpc;
pub mod health;
pub mod healthcheck;
pub mod http;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod panels_cmd;
pub mod platform;
pub(crate) mod protocol;
pub mod reconcile_cmd;
pub mod sandbox;
pub mod service;
pub mod startup;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod tls;
pub mod watcher;
pub mod workflow;

/// The skip-or-fail rule of the integration suites (a test that lacks an outside piece
/// is skipped, or with `CI=true` fails), shared with the unit tests that need one.
/// Who may import whom, checked on the source (docs/architecture.md).
#[cfg(test)]
mod layering;

#[cfg(test)]
#[path = "../tests/support/skip.rs"]
pub(crate) mod test_skip;
