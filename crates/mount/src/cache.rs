//! A size-bounded least-recently-used cache that loads each missing value once.
//!
//! Several FUSE threads and the read-ahead workers may ask for the same blob at the same time;
//! the first one loads it and the others wait for that load instead of fetching and decrypting
//! it again. A failed load is not cached: the next caller tries again. The cache holds `Arc`s,
//! so an evicted value stays alive for whoever is still copying out of it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// A value's weight in the budget (bytes, roughly).
pub(crate) trait Weigh {
    fn weight(&self) -> usize;
}

impl Weigh for Vec<u8> {
    fn weight(&self) -> usize {
        self.len()
    }
}

struct Slot<V> {
    value: Arc<V>,
    tick: u64,
    weight: usize,
}

struct State<K, V> {
    entries: HashMap<K, Slot<V>>,
    /// Recency order: tick → key; the smallest tick is evicted first.
    order: BTreeMap<u64, K>,
    /// Keys being loaded right now (callers wait on `loaded`).
    loading: HashSet<K>,
    weight: usize,
    tick: u64,
}

/// Counters for tests and logging.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CacheStats {
    pub hits: u64,
    pub loads: u64,
    pub waits: u64,
}

pub(crate) struct Cache<K, V> {
    state: Mutex<State<K, V>>,
    loaded: Condvar,
    capacity: usize,
    stats: Mutex<CacheStats>,
}

impl<K: Hash + Eq + Copy, V: Weigh> Cache<K, V> {
    /// A cache holding at most about `capacity` weight (one value larger than that is still
    /// kept, alone, until the next insertion).
    pub fn new(capacity: usize) -> Self {
        Cache {
            state: Mutex::new(State {
                entries: HashMap::new(),
                order: BTreeMap::new(),
                loading: HashSet::new(),
                weight: 0,
                tick: 0,
            }),
            loaded: Condvar::new(),
            capacity,
            stats: Mutex::new(CacheStats::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<K, V>> {
        // A panic while holding the lock leaves consistent data (every update is a few map
        // operations), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, f: impl FnOnce(&mut CacheStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }

    pub fn stats(&self) -> CacheStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `key` is cached or being loaded.
    pub fn has(&self, key: &K) -> bool {
        let st = self.lock();
        st.entries.contains_key(key) || st.loading.contains(key)
    }

    /// The cached value of `key`, or the result of `load` (run by this thread only if no other
    /// thread is loading the same key; otherwise this waits for that load).
    pub fn get_or_load<E>(&self, key: K, load: impl FnOnce() -> Result<V, E>) -> Result<Arc<V>, E> {
        let mut st = self.lock();
        let mut waited = false;
        loop {
            if st.entries.contains_key(&key) {
                let value = touch(&mut st, &key);
                drop(st);
                self.count(|s| {
                    s.hits += 1;
                    s.waits += u64::from(waited);
                });
                return Ok(value);
            }
            if !st.loading.contains(&key) {
                break;
            }
            waited = true;
            st = self.loaded.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.loading.insert(key);
        drop(st);
        // Whatever happens in `load` (even a panic), the key must leave `loading`, or every
        // later caller would wait forever.
        let done = LoadingGuard { cache: self, key };
        let result = load().map(Arc::new);
        let mut st = self.lock();
        if let Ok(value) = &result {
            insert(&mut st, key, value.clone(), self.capacity);
        }
        drop(st);
        drop(done);
        self.count(|s| s.loads += 1);
        result
    }
}

struct LoadingGuard<'a, K: Hash + Eq + Copy, V: Weigh> {
    cache: &'a Cache<K, V>,
    key: K,
}

impl<K: Hash + Eq + Copy, V: Weigh> Drop for LoadingGuard<'_, K, V> {
    fn drop(&mut self) {
        self.cache.lock().loading.remove(&self.key);
        self.cache.loaded.notify_all();
    }
}

fn touch<K: Hash + Eq + Copy, V>(st: &mut State<K, V>, key: &K) -> Arc<V> {
    st.tick += 1;
    let tick = st.tick;
    let Some(slot) = st.entries.get_mut(key) else {
        unreachable!("touch is called for present keys only")
    };
    let old = std::mem::replace(&mut slot.tick, tick);
    let value = slot.value.clone();
    st.order.remove(&old);
    st.order.insert(tick, *key);
    value
}

fn insert<K: Hash + Eq + Copy, V: Weigh>(
    st: &mut State<K, V>,
    key: K,
    value: Arc<V>,
    capacity: usize,
) {
    let weight = value.weight();
    while st.weight + weight > capacity {
        let Some((_, oldest)) = st.order.pop_first() else {
            break;
        };
        if let Some(slot) = st.entries.remove(&oldest) {
            st.weight -= slot.weight;
        }
    }
    st.tick += 1;
    let tick = st.tick;
    if let Some(old) = st.entries.insert(
        key,
        Slot {
            value,
            tick,
            weight,
        },
    ) {
        st.order.remove(&old.tick);
        st.weight -= old.weight;
    }
    st.order.insert(tick, key);
    st.weight += weight;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn bytes(n: usize) -> Vec<u8> {
        vec![0; n]
    }

    #[test]
    fn evicts_least_recently_used_within_budget() {
        let c: Cache<u32, Vec<u8>> = Cache::new(300);
        for k in 0..3 {
            c.get_or_load(k, || Ok::<_, ()>(bytes(100))).unwrap();
        }
        // Use 0 again, so 1 is the oldest.
        c.get_or_load(0, || -> Result<_, ()> { panic!("0 is cached") })
            .unwrap();
        c.get_or_load(3, || Ok::<_, ()>(bytes(100))).unwrap();
        assert!(c.has(&0) && c.has(&2) && c.has(&3));
        assert!(!c.has(&1), "the least recently used entry is evicted");
        assert_eq!(c.lock().weight, 300);
    }

    #[test]
    fn failed_loads_are_not_cached() {
        let c: Cache<u32, Vec<u8>> = Cache::new(100);
        assert_eq!(c.get_or_load(7, || Err("boom")).unwrap_err(), "boom");
        assert!(!c.has(&7));
        assert_eq!(
            *c.get_or_load(7, || Ok::<_, ()>(bytes(3))).unwrap(),
            bytes(3)
        );
    }

    #[test]
    fn concurrent_callers_share_one_load() {
        let c: Arc<Cache<u32, Vec<u8>>> = Arc::new(Cache::new(1 << 20));
        let loads = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (c, loads) = (c.clone(), loads.clone());
                std::thread::spawn(move || {
                    c.get_or_load(1, || {
                        loads.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        Ok::<_, ()>(bytes(10))
                    })
                    .unwrap()
                    .len()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), 10);
        }
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "one load for eight callers"
        );
    }

    #[test]
    fn a_panicking_load_releases_waiters() {
        let c: Arc<Cache<u32, Vec<u8>>> = Arc::new(Cache::new(100));
        let c2 = c.clone();
        let r = std::thread::spawn(move || {
            let _ = c2.get_or_load(5, || -> Result<Vec<u8>, ()> { panic!("loader died") });
        })
        .join();
        assert!(r.is_err());
        assert!(!c.has(&5));
        assert!(c.get_or_load(5, || Ok::<_, ()>(bytes(1))).is_ok());
    }
}
