//! The platform watcher end to end: the BILLmanager sandbox, license-facade, the
//! platform simulator driven through its own API, and watchers — in this process, and
//! as a child process killed with SIGKILL.

mod harness;
#[path = "../support/mod.rs"]
mod support;

mod console;
mod faults;
mod lifecycle;
mod operator;
mod pool;
mod recipe;
mod sigkill;
mod tls;
mod two_watchers;
