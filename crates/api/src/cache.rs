//! A small time-bounded cache for what nearly every request reads and rarely changes
//! (resolved access tokens, account settings), so a busy client does not cost a database
//! round trip per request for them.
//!
//! Entries live `ttl`. Writes through this process clear the caches at once (see
//! `auth::resolve`); a change made through another node takes effect here within `ttl`.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Bound on entries; past it the cache starts afresh (cheaper than tracking age, and the
/// busy keys are back within one request each).
const MAX_ENTRIES: usize = 100_000;

pub(crate) struct TtlCache<K, V> {
    ttl: Duration,
    entries: RwLock<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    /// A zero `ttl` disables the cache.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Default::default(),
        }
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let (_, v) = entries.get(key).filter(|(at, _)| at.elapsed() < self.ttl)?;
        Some(v.clone())
    }

    pub(crate) fn put(&self, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), value));
    }

    pub(crate) fn clear(&self) {
        self.entries.write().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_clear() {
        let c = TtlCache::new(Duration::from_millis(50));
        c.put(1, "a");
        assert_eq!(c.get(&1), Some("a"));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get(&1), None, "past its ttl");
        c.put(1, "b");
        c.clear();
        assert_eq!(c.get(&1), None, "cleared");
        let off = TtlCache::new(Duration::ZERO);
        off.put(1, "a");
        assert_eq!(off.get(&1), None, "a zero ttl keeps nothing");
    }
}
