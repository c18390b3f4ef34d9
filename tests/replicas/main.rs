//! Scale-out: several replicas on one PostgreSQL database and one sandbox. Orders are
//! placed exactly once whichever replica takes them, a killed replica's work is taken
//! over, the change feed crosses replicas, and SIGTERM drains without resetting a
//! client. Skipped (with a note) when `LICENSE_FACADE_TEST_POSTGRES_URL` is unset;
//! every test creates and drops its own database.

mod support;

mod drain;
mod leases;
mod scale;
mod takeover;
mod watch;
