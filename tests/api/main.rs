//! End-to-end tests: the real application on port 0 with its own database, the
//! sandbox as upstream, driven over real HTTP and gRPC.

mod helpers;

mod catalog;
mod drift;
mod errors;
mod feed;
mod health;
mod idempotency;
mod lifecycle;
mod listing;
mod ordering;
mod panels;
mod validation;
