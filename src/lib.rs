//! license-facade: a gRPC + REST service that orders and manages ISPmanager licenses
//! on BILLmanager exactly once.
//!
//! Layers, outermost first:
//! - [`grpc`] and [`http`]: thin transports over [`service`], served on the bounded
//!   connections of [`listener`]; [`downstream`], the shop's own `/billmgr` API on
//!   the HTTP listener, is a third;
//! - [`service`]: the use cases and the durable workflow worker;
//! - [`domain`]: validated values, the license, the panel catalog;
//! - [`store`]: persistence behind the `Store` trait;
//! - [`billmanager`]: the upstream client behind the `Billmanager` trait;
//! - [`sandbox`]: a BILLmanager simulator for demos and tests;
//! - [`watcher`]: the VMmanager 6 / DCImanager 6 integration, a client of the gRPC API
//!   that keeps one license on every marked server; [`platform`] holds its platform
//!   adapters and their simulator;
//! - `protocol`: the BILLmanager request and answer format, read by the client and
//!   written by the sandbox and the downstream endpoint.

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
pub mod grpc;
pub mod health;
pub mod healthcheck;
pub mod http;
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

/// The skip-or-fail rule of the integration suites (a test that lacks an outside piece
/// is skipped, or with `CI=true` fails), shared with the unit tests that need one.
#[cfg(test)]
#[path = "../tests/support/skip.rs"]
pub(crate) mod test_skip;
