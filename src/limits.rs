//! Bounds shared by every part served on the HTTP listener (the REST API, the console
//! and the shop's `/billmgr` API), so that none of them borrows it from another.

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
