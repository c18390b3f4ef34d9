//! The JSON of licenses as last answered, by id. Provisioning systems poll their
//! licenses, and a license mostly has not changed since the last poll; rendering it
//! (three timestamps formatted, some twenty fields converted and escaped) is the
//! largest part of a read's handler. A read compares the license it got from the
//! store with the one last rendered (field by field, far cheaper than rendering) and,
//! when they are equal, answers with the bytes rendered then. The comparison, not a
//! version number, decides: whatever changed the license, the answer is never older
//! than the store's.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;

use crate::api::license_to_pb;
use crate::domain::{License, LicenseId};

/// Entries kept at most (about 1 KiB each); past it the cache starts over and the
/// reads refill it.
const CAPACITY: usize = 4096;

/// See the module docs.
#[derive(Debug, Default)]
pub struct RenderedLicenses {
    inner: Mutex<HashMap<LicenseId, (License, Bytes)>>,
}

impl RenderedLicenses {
    /// The JSON body of `license`: the bytes rendered for an equal license before,
    /// or rendered now and kept.
    pub fn json(&self, license: &License) -> Bytes {
        if let Some((seen, bytes)) = self.lock().get(&license.id)
            && seen == license
        {
            return bytes.clone();
        }
        // Rendered outside the lock: a rendering holds up no other read.
        let bytes = Bytes::from(
            serde_json::to_vec(&license_to_pb(license)).expect("a license always serializes"),
        );
        let mut inner = self.lock();
        if inner.len() >= CAPACITY {
            inner.clear();
        }
        inner.insert(license.id, (license.clone(), bytes.clone()));
        bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<LicenseId, (License, Bytes)>> {
        // The map holds plain data; a panic elsewhere cannot leave it half-changed.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::LicenseState;

    fn license() -> License {
        crate::store::tests::pending("c", "srv-1", crate::store::tests::T0)
    }

    #[test]
    fn an_unchanged_license_is_answered_with_the_bytes_rendered_before() {
        let cache = RenderedLicenses::default();
        let license = license();
        let first = cache.json(&license);
        let again = cache.json(&license.clone());
        // The same allocation: nothing was rendered the second time.
        assert_eq!(first.as_ptr(), again.as_ptr());
        let expected = serde_json::to_vec(&license_to_pb(&license)).unwrap();
        assert_eq!(first.as_ref(), expected.as_slice());
    }

    #[test]
    fn any_change_of_the_license_is_rendered_anew() {
        let cache = RenderedLicenses::default();
        let mut license = license();
        let before = cache.json(&license);
        license.state = LicenseState::Suspended;
        let after = cache.json(&license);
        assert_ne!(before, after);
        let shown: serde_json::Value = serde_json::from_slice(&after).unwrap();
        assert_eq!(shown["state"], "SUSPENDED");
        // And back: the answer follows the license, not the order of the reads.
        license.state = LicenseState::Pending;
        let back: serde_json::Value = serde_json::from_slice(&cache.json(&license)).unwrap();
        assert_eq!(back["state"], "PENDING");
    }

    #[test]
    fn the_cache_starts_over_when_full() {
        let cache = RenderedLicenses::default();
        let template = license();
        for _ in 0..=CAPACITY {
            let mut l = template.clone();
            l.id = LicenseId::generate();
            cache.json(&l);
        }
        assert!(cache.lock().len() <= CAPACITY);
    }
}
