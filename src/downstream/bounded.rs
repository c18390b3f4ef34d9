//! A map of fixed capacity that evicts its least recently used entry to make room, so
//! that what callers can make it hold (failure counts, sessions) stays bounded however
//! many keys a flood brings: memory is at most `capacity` entries, never a function of
//! the traffic.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// A least-recently-used map of at most `capacity` entries; inserting and
/// [`touch`](Self::touch)ing make an entry the most recent.
#[derive(Debug)]
pub struct LruMap<K, V> {
    capacity: usize,
    entries: HashMap<K, (V, u64)>,
    /// Keys by the tick of their last use; the first is the next to evict.
    order: BTreeMap<u64, K>,
    tick: u64,
}

impl<K: Hash + Eq + Clone, V> LruMap<K, V> {
    /// An empty map holding at most `capacity` (at least 1) entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entry of `key`, without making it more recent.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(v, _)| v)
    }

    /// The entry of `key`, made the most recent.
    pub fn touch(&mut self, key: &K) -> Option<&mut V> {
        let tick = self.next_tick();
        let (value, used) = self.entries.get_mut(key)?;
        self.order.remove(used);
        *used = tick;
        self.order.insert(tick, key.clone());
        Some(value)
    }

    /// Sets `key` to `value` as the most recent entry; when the map is full, the least
    /// recently used entry makes room.
    pub fn insert(&mut self, key: K, value: V) {
        if let Some((_, used)) = self.entries.remove(&key) {
            self.order.remove(&used);
        } else if self.entries.len() >= self.capacity
            && let Some((_, oldest)) = self.order.pop_first()
        {
            self.entries.remove(&oldest);
        }
        let tick = self.next_tick();
        self.order.insert(tick, key.clone());
        self.entries.insert(key, (value, tick));
    }

    /// Removes `key`'s entry.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let (value, used) = self.entries.remove(key)?;
        self.order.remove(&used);
        Some(value)
    }

    /// Keeps only the entries for which `keep` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        let order = &mut self.order;
        self.entries.retain(|_, (value, used)| {
            let kept = keep(value);
            if !kept {
                order.remove(used);
            }
            kept
        });
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }
}

#[cfg(test)]
mod tests {
    use super::LruMap;

    #[test]
    fn a_full_map_evicts_the_least_recently_used_entry() {
        let mut map = LruMap::new(3);
        for k in 0..3 {
            map.insert(k, k * 10);
        }
        // 0 is used again, so 1 is now the oldest.
        assert_eq!(map.touch(&0).copied(), Some(0));
        map.insert(3, 30);
        assert_eq!(map.len(), 3);
        assert_eq!(map.get(&1), None);
        assert_eq!(map.get(&0), Some(&0));
        // Re-inserting a held key replaces it without evicting anything.
        map.insert(3, 31);
        assert_eq!(
            (map.len(), map.get(&3), map.get(&2)),
            (3, Some(&31), Some(&20))
        );
    }

    #[test]
    fn a_flood_of_new_keys_never_grows_it_past_its_capacity() {
        let mut map = LruMap::new(16);
        for k in 0..10_000u32 {
            map.insert(k, ());
            assert!(map.len() <= 16);
        }
        assert_eq!(map.len(), 16);
        assert!(map.get(&9_999).is_some() && map.get(&9_984).is_some());
        assert!(map.get(&9_983).is_none());
    }

    #[test]
    fn removed_and_retained_entries_leave_the_order_consistent() {
        let mut map = LruMap::new(4);
        for k in 0..4 {
            map.insert(k, k);
        }
        assert_eq!(map.remove(&1), Some(1));
        map.retain(|v| *v != 2);
        assert_eq!(map.len(), 2);
        for k in 10..14 {
            map.insert(k, k);
        }
        assert_eq!(map.len(), 4);
        assert!((10..14).all(|k| map.get(&k).is_some()));
        assert!(map.order.len() == map.entries.len());
    }
}
