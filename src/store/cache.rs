//! A read-through cache of licenses by id, for a store whose database only this
//! process writes (a SQLite file held by one `serve`, or an in-memory database).
//!
//! Reads of one license are the hot path (provisioning systems poll them); through
//! sqlx each costs two thread hand-offs to the connection's worker thread. The cache
//! answers them from memory and stays exact: every write of a license drops its entry
//! when the write ends (a guard, so a cancelled write drops it too), and a read that
//! overlapped any such write does not fill the cache (a generation counter).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::domain::{License, LicenseId};

/// Entries kept at most; past it the cache starts over (the reads refill it).
const CAPACITY: usize = 100_000;

/// The cache; shared by the store's clones.
#[derive(Debug, Default)]
pub(super) struct LicenseCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    licenses: HashMap<LicenseId, License>,
    /// Bumped by every end of a write; a fill taken before the bump is stale.
    generation: u64,
}

impl LicenseCache {
    /// The cached license, if any.
    pub(super) fn get(&self, id: LicenseId) -> Option<License> {
        self.lock().licenses.get(&id).cloned()
    }

    /// The generation to pass to [`fill`](Self::fill); take it before reading.
    pub(super) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Caches `license`, read from the database after [`generation`](Self::generation)
    /// returned `seen`, unless a write ended since (the read may predate it).
    pub(super) fn fill(&self, seen: u64, license: &License) {
        let mut inner = self.lock();
        if inner.generation != seen {
            return;
        }
        if inner.licenses.len() >= CAPACITY {
            inner.licenses.clear();
        }
        inner.licenses.insert(license.id, license.clone());
    }

    /// A guard to hold across a write of license `id` until it committed or failed:
    /// when it is dropped the entry goes and the generation moves on.
    pub(super) fn writing(self: &Arc<Self>, id: LicenseId) -> WriteGuard {
        self.guard(id, None)
    }

    /// [`writing`](Self::writing), and the generation the write ended at once the
    /// guard is dropped (0 before): a license read back in the write's transaction
    /// fills the cache with it ([`fill_written`](Self::fill_written)) unless another
    /// write ended since.
    pub(super) fn writing_to_fill(self: &Arc<Self>, id: LicenseId) -> (WriteGuard, Ended) {
        let ended = Ended::default();
        (self.guard(id, Some(ended.clone())), ended)
    }

    fn guard(self: &Arc<Self>, id: LicenseId, ended: Option<Ended>) -> WriteGuard {
        WriteGuard {
            cache: self.clone(),
            id,
            ended,
        }
    }

    /// Caches `license`, read back in a committed write whose guard has ended at
    /// `ended`'s generation, unless another write ended since.
    pub(super) fn fill_written(&self, ended: &Ended, license: &License) {
        match ended.0.load(Ordering::Acquire) {
            0 => {}
            seen => self.fill(seen, license),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map holds plain data; a panic elsewhere cannot leave it half-changed.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// See [`LicenseCache::writing`].
pub(super) struct WriteGuard {
    cache: Arc<LicenseCache>,
    id: LicenseId,
    ended: Option<Ended>,
}

/// The generation a write's guard ended at; see [`LicenseCache::writing_to_fill`].
#[derive(Debug, Default, Clone)]
pub(super) struct Ended(Arc<AtomicU64>);

impl Drop for WriteGuard {
    fn drop(&mut self) {
        let mut inner = self.cache.lock();
        inner.licenses.remove(&self.id);
        inner.generation += 1;
        if let Some(ended) = &self.ended {
            ended.0.store(inner.generation, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn license() -> License {
        crate::store::tests::pending("c", "srv-1", crate::store::tests::T0)
    }

    #[test]
    fn a_read_that_overlapped_a_write_does_not_fill() {
        let cache = Arc::new(LicenseCache::default());
        let l = license();
        let seen = cache.generation();
        drop(cache.writing(l.id));
        cache.fill(seen, &l);
        assert_eq!(cache.get(l.id), None);
        cache.fill(cache.generation(), &l);
        assert_eq!(cache.get(l.id), Some(l));
    }

    #[test]
    fn a_license_read_back_in_a_write_fills_only_when_no_other_write_ended_since() {
        let cache = Arc::new(LicenseCache::default());
        let l = license();
        let (guard, ended) = cache.writing_to_fill(l.id);
        cache.fill_written(&ended, &l);
        assert_eq!(cache.get(l.id), None, "not before the write ended");
        drop(guard);
        cache.fill_written(&ended, &l);
        assert_eq!(cache.get(l.id), Some(l.clone()));

        let (guard, ended) = cache.writing_to_fill(l.id);
        drop(guard);
        drop(cache.writing(l.id));
        cache.fill_written(&ended, &l);
        assert_eq!(cache.get(l.id), None, "another write ended since");
    }

    #[test]
    fn a_write_drops_the_entry_when_it_ends() {
        let cache = Arc::new(LicenseCache::default());
        let l = license();
        cache.fill(cache.generation(), &l);
        let guard = cache.writing(l.id);
        assert_eq!(
            cache.get(l.id),
            Some(l.clone()),
            "kept while the write runs"
        );
        drop(guard);
        assert_eq!(cache.get(l.id), None);
    }
}
