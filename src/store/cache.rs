//! The chunk cache: decompressed chunk data by hash, least recently used first out, bounded
//! by the bytes it holds rather than by entry count, since chunk sizes vary by 16x.
//! Values are `Arc<Vec<u8>>` so a hit hands out the data without copying it under the lock, and
//! a freshly decompressed buffer goes in as it is.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use lru::LruCache;

use crate::chunker::ChunkHash;

pub struct ChunkCache {
    inner: Mutex<Inner>,
    // Counters live outside the lock so reading stats never contends with readers.
    hits: AtomicU64,
    misses: AtomicU64,
}

struct Inner {
    lru: LruCache<ChunkHash, Arc<Vec<u8>>>,
    used: usize,
    capacity: usize,
}

impl Inner {
    fn evict_to(&mut self, limit: usize) {
        while self.used > limit {
            let Some((_, data)) = self.lru.pop_lru() else {
                break;
            };
            self.used -= data.len();
        }
    }
}

impl std::fmt::Debug for ChunkCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("ChunkCache")
            .field("entries", &inner.lru.len())
            .field("used", &inner.used)
            .field("capacity", &inner.capacity)
            .finish()
    }
}

impl ChunkCache {
    pub fn new(capacity_bytes: usize) -> ChunkCache {
        ChunkCache {
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                used: 0,
                capacity: capacity_bytes,
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Cached data is immutable and content-addressed, so a panic elsewhere cannot have left
    /// an entry wrong; a poisoned lock is safe to keep using.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached data for `hash`, marking it most recently used.
    pub fn get(&self, hash: &ChunkHash) -> Option<Arc<Vec<u8>>> {
        let found = self.lock().lru.get(hash).cloned();
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// The cached data for `hash` without counting a hit or miss or marking it used: for a
    /// second look after a first `get` missed.
    pub fn peek(&self, hash: &ChunkHash) -> Option<Arc<Vec<u8>>> {
        self.lock().lru.peek(hash).cloned()
    }

    pub fn contains(&self, hash: &ChunkHash) -> bool {
        self.lock().lru.contains(hash)
    }

    /// Insert or replace, then evict least recently used entries until within capacity. An
    /// item bigger than the whole capacity is not cached: it would evict everything and then
    /// itself.
    pub fn insert(&self, hash: ChunkHash, data: Arc<Vec<u8>>) {
        let mut inner = self.lock();
        if let Some(old) = inner.lru.pop(&hash) {
            inner.used -= old.len();
        }
        if data.len() > inner.capacity {
            return;
        }
        let limit = inner.capacity - data.len();
        inner.evict_to(limit);
        inner.used += data.len();
        inner.lru.put(hash, data);
    }

    pub fn remove(&self, hash: &ChunkHash) {
        let mut inner = self.lock();
        if let Some(old) = inner.lru.pop(hash) {
            inner.used -= old.len();
        }
    }

    /// Drop everything (after a repair rewrote chunks, or to measure cold reads).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.lru.clear();
        inner.used = 0;
    }

    /// Change the bound, evicting at once if it shrank.
    pub fn set_capacity(&self, capacity_bytes: usize) {
        let mut inner = self.lock();
        inner.capacity = capacity_bytes;
        inner.evict_to(capacity_bytes);
    }

    pub fn capacity(&self) -> usize {
        self.lock().capacity
    }

    /// Number of cached chunks.
    pub fn len(&self) -> usize {
        self.lock().lru.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().lru.is_empty()
    }

    pub fn used_bytes(&self) -> usize {
        self.lock().used
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u8) -> ChunkHash {
        ChunkHash([i; 32])
    }

    fn data(len: usize) -> Arc<Vec<u8>> {
        Arc::new(vec![7u8; len])
    }

    #[test]
    fn cache_evicts_least_recently_used_until_within_its_byte_bound() {
        let c = ChunkCache::new(100);
        c.insert(h(1), data(40));
        c.insert(h(2), data(40));
        assert!(c.get(&h(1)).is_some()); // 2 is now the least recently used
        c.insert(h(3), data(30));
        assert_eq!(c.used_bytes(), 70);
        assert!(c.get(&h(2)).is_none());
        assert!(c.get(&h(1)).is_some() && c.get(&h(3)).is_some());
        c.insert(h(4), data(100));
        assert_eq!((c.len(), c.used_bytes()), (1, 100));
        assert_eq!((c.hits(), c.misses()), (3, 1));
    }

    #[test]
    fn cache_does_not_keep_an_item_bigger_than_its_capacity() {
        let c = ChunkCache::new(100);
        c.insert(h(1), data(50));
        c.insert(h(2), data(101));
        assert!(c.get(&h(2)).is_none());
        assert!(c.get(&h(1)).is_some(), "an uncacheable item evicts nothing");
        c.insert(h(1), data(200));
        assert!(
            c.is_empty(),
            "replacing with an uncacheable item drops the stale one"
        );
        assert_eq!(c.used_bytes(), 0);
    }

    #[test]
    fn cache_replace_and_remove_keep_the_byte_count_exact() {
        let c = ChunkCache::new(1000);
        c.insert(h(1), data(300));
        c.insert(h(1), data(100));
        assert_eq!((c.len(), c.used_bytes()), (1, 100));
        c.remove(&h(1));
        c.remove(&h(9));
        assert_eq!(c.used_bytes(), 0);
        for i in 0..10 {
            c.insert(h(i), data(100));
        }
        c.set_capacity(250);
        assert_eq!((c.len(), c.used_bytes(), c.capacity()), (2, 200, 250));
        assert!(c.get(&h(9)).is_some() && c.get(&h(8)).is_some());
        c.clear();
        assert_eq!((c.len(), c.used_bytes()), (0, 0));
    }

    #[test]
    fn cache_is_shared_safely_between_threads() {
        let c = Arc::new(ChunkCache::new(64 * 50));
        let workers: Vec<_> = (0..4u8)
            .map(|t| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || {
                    for i in 0..200u8 {
                        c.insert(h(i.wrapping_mul(t + 1)), data(64));
                        c.get(&h(i));
                    }
                })
            })
            .collect();
        workers.into_iter().for_each(|w| w.join().unwrap());
        assert!(c.used_bytes() <= 64 * 50);
        assert_eq!(c.used_bytes(), c.len() * 64);
        assert_eq!(c.hits() + c.misses(), 800);
    }
}
