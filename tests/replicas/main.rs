//! Scale-out: several replicas on one PostgreSQL database and one sandbox. Orders are
//! placed exactly once whichever replica takes them, a killed replica's work is taken
//! over, the change feed crosses replicas, and SIGTERM drains without resetting a
//! client. The PostgreSQL tests are skipped (with a note) when
//! `LICENSE_FACADE_TEST_POSTGRES_URL` is unset, and fail then with `CI=true`; each
//! creates and drops its own
//! database. The lease tests also run on SQLite, and the container healthcheck needs
//! no database server.

#[path = "../support/mod.rs"]
mod support;

mod caps;
mod drain;
mod healthcheck;
mod heartbeat;
mod leases;
mod renewal;
mod scale;
mod takeover;
mod watch;
mod webhooks;
