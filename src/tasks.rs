//! Everything an application runs in the background, held in one place so that
//! stopping the application ends all of it.
//!
//! A task spawned with `tokio::spawn` lives on after whoever spawned it is gone:
//! an application stopped (or "crashed" in a test by dropping it) would leave its
//! worker loops, its writers and its timers running, still writing to the database
//! and still calling the upstream beside the application that replaces it. Every
//! background task of an application is spawned through one [`Tasks`] instead, so
//! [`Tasks::kill`] stops them at whatever await point they are and
//! [`Tasks::wait`] returns only once every one of them has ended.

use std::future::Future;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The background tasks of one application; cheap to clone (clones share the set).
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    kill: CancellationToken,
}

impl Tasks {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `task` in the background until it ends or the set is killed; returns
    /// `None` from the handle when it was killed.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<Option<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let kill = self.kill.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                // A killed task is dropped where it stands, like a crashed process's.
                biased;
                _ = kill.cancelled() => None,
                output = task => Some(output),
            }
        })
    }

    /// Stops every task of the set at its next await point (running ones finish their
    /// current poll first); tasks spawned afterwards end at once.
    pub fn kill(&self) {
        self.kill.cancel();
    }

    /// Whether [`kill`](Self::kill) was called.
    pub fn is_killed(&self) -> bool {
        self.kill.is_cancelled()
    }

    /// Waits until every task spawned so far has ended (killed or finished).
    pub async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
        // Spawning stays possible after a wait (a graceful stop waits, then the
        // store's own tasks may still be spawned by a late caller; those end with
        // the kill that follows).
        self.tracker.reopen();
    }

    /// How many tasks are running now.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    /// Whether no task is running.
    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn kill_drops_every_task_where_it_stands_and_wait_returns_after_they_ended() {
        let tasks = Tasks::new();
        let dropped = Arc::new(AtomicBool::new(false));
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let flag = Flag(dropped.clone());
        let handle = tasks.spawn(async move {
            let _flag = flag;
            std::future::pending::<()>().await
        });
        assert_eq!(tasks.len(), 1);

        tasks.kill();
        tasks.wait().await;

        assert!(
            dropped.load(Ordering::SeqCst),
            "the task's state was dropped"
        );
        assert!(tasks.is_empty());
        assert_eq!(handle.await.unwrap(), None, "a killed task has no output");
    }

    #[tokio::test]
    async fn a_task_that_finishes_returns_its_output_and_wait_does_not_need_a_kill() {
        let tasks = Tasks::new();
        let handle = tasks.spawn(async { 7 });
        tasks.wait().await;
        assert_eq!(handle.await.unwrap(), Some(7));
        assert!(!tasks.is_killed());
    }

    #[tokio::test]
    async fn a_task_spawned_after_the_kill_ends_at_once() {
        let tasks = Tasks::new();
        tasks.kill();
        let handle = tasks.spawn(std::future::pending::<()>());
        assert_eq!(handle.await.unwrap(), None);
    }
}
