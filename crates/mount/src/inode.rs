//! Inode numbers and the table of inodes the kernel currently knows.
//!
//! An inode number is derived from what the inode *is*, not from when it was first seen:
//! a hash of (parent inode, name), or for a file with several hard links of (snapshot,
//! device, inode) as recorded at backup time, so that every link of it shares one number.
//! Numbers are therefore stable for the life of a mount (and across mounts), even though
//! the table forgets inodes when the kernel does (`forget`), which keeps memory bounded by
//! what the kernel caches rather than by everything ever listed. A hash collision is
//! resolved by probing the next number; that number then depends on which inode was seen
//! first, which is the one case where a number can change after the kernel forgot it.

use crate::fs::Item;
use snapguard_format::SnapshotId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

pub(crate) const ROOT: u64 = 1;
pub(crate) const SNAPSHOTS: u64 = 2;
pub(crate) const TAGS: u64 = 3;
pub(crate) const HOSTS: u64 = 4;
pub(crate) const HISTORY: u64 = 5;
pub(crate) const LATEST: u64 = 6;
/// Numbers below this are reserved for the fixed inodes above.
const FIRST_DYNAMIC: u64 = 16;

/// What identifies an inode.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// Fixed inodes (the root and the top-level directories).
    Fixed(u64),
    /// The entry `name` in directory `parent`.
    Child { parent: u64, name: Vec<u8> },
    /// A file with more than one hard link, by the device and inode it had when it was
    /// backed up: every path of it in one snapshot is this one inode.
    Hardlink {
        snapshot: SnapshotId,
        device: u64,
        inode: u64,
    },
}

impl Key {
    /// The number this key hashes to (before collision probing).
    fn home(&self) -> u64 {
        let mut h = blake3::Hasher::new();
        match self {
            Key::Fixed(n) => return *n,
            Key::Child { parent, name } => {
                h.update(b"child\0");
                h.update(&parent.to_le_bytes());
                h.update(name);
            }
            Key::Hardlink {
                snapshot,
                device,
                inode,
            } => {
                h.update(b"hardlink\0");
                h.update(snapshot.as_bytes());
                h.update(&device.to_le_bytes());
                h.update(&inode.to_le_bytes());
            }
        }
        let mut n = [0u8; 8];
        n.copy_from_slice(&h.finalize().as_bytes()[..8]);
        let n = u64::from_le_bytes(n);
        if n < FIRST_DYNAMIC {
            n + FIRST_DYNAMIC
        } else {
            n
        }
    }

    /// The parent directory, where the key names one.
    pub fn parent(&self) -> Option<u64> {
        match self {
            Key::Child { parent, .. } => Some(*parent),
            _ => None,
        }
    }
}

fn next(n: u64) -> u64 {
    match n.checked_add(1) {
        Some(n) => n,
        None => FIRST_DYNAMIC,
    }
}

struct Slot {
    key: Key,
    item: Arc<Item>,
    /// How many times the kernel was given this inode (by `lookup`) and has not forgotten it.
    lookups: u64,
}

/// The inodes the kernel holds references to.
pub(crate) struct Table {
    slots: Mutex<HashMap<u64, Slot>>,
}

impl Table {
    /// A table holding the fixed inodes.
    pub fn new(fixed: Vec<(u64, Item)>) -> Table {
        let slots = fixed
            .into_iter()
            .map(|(ino, item)| {
                (
                    ino,
                    Slot {
                        key: Key::Fixed(ino),
                        item: Arc::new(item),
                        lookups: 1,
                    },
                )
            })
            .collect();
        Table {
            slots: Mutex::new(slots),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, ino: u64) -> Option<(Arc<Item>, Option<u64>)> {
        self.lock()
            .get(&ino)
            .map(|s| (s.item.clone(), s.key.parent()))
    }

    /// The number of `key` without taking a reference (for directory listings).
    pub fn peek(&self, key: &Key) -> u64 {
        let slots = self.lock();
        let mut n = key.home();
        loop {
            match slots.get(&n) {
                Some(s) if s.key != *key => n = next(n),
                _ => return n,
            }
        }
    }

    /// Take one kernel reference to the inode of `key`, creating it with `make` if the
    /// kernel holds none. Returns its number and item.
    pub fn lookup(&self, key: Key, make: impl FnOnce() -> Item) -> (u64, Arc<Item>) {
        let mut slots = self.lock();
        if let Key::Fixed(n) = key {
            if let Some(s) = slots.get(&n) {
                return (n, s.item.clone());
            }
        }
        let mut n = key.home();
        loop {
            match slots.get_mut(&n) {
                Some(s) if s.key == key => {
                    s.lookups += 1;
                    return (n, s.item.clone());
                }
                Some(_) => n = next(n),
                None => break,
            }
        }
        let item = Arc::new(make());
        slots.insert(
            n,
            Slot {
                key,
                item: item.clone(),
                lookups: 1,
            },
        );
        (n, item)
    }

    /// The kernel dropped `count` references to `ino`.
    pub fn forget(&self, ino: u64, count: u64) {
        if ino < FIRST_DYNAMIC {
            return;
        }
        let mut slots = self.lock();
        if let Some(s) = slots.get_mut(&ino) {
            s.lookups = s.lookups.saturating_sub(count);
            if s.lookups == 0 {
                slots.remove(&ino);
            }
        }
    }

    /// Inodes currently held (for tests and logging).
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn child(parent: u64, name: &str) -> Key {
        Key::Child {
            parent,
            name: name.as_bytes().to_vec(),
        }
    }

    #[test]
    fn numbers_are_stable_after_forget_and_distinct_per_key() {
        let t = Table::new(vec![(ROOT, Item::Root)]);
        let (a, _) = t.lookup(child(ROOT, "a"), || Item::Root);
        let (b, _) = t.lookup(child(ROOT, "b"), || Item::Root);
        assert_ne!(a, b);
        assert!(a >= FIRST_DYNAMIC && b >= FIRST_DYNAMIC);
        assert_eq!(t.peek(&child(ROOT, "a")), a);
        t.forget(a, 1);
        assert!(t.get(a).is_none(), "forgotten");
        let (a2, _) = t.lookup(child(ROOT, "a"), || Item::Root);
        assert_eq!(a, a2, "same key, same number after the kernel forgot it");
    }

    #[test]
    fn references_are_counted() {
        let t = Table::new(vec![]);
        let (a, _) = t.lookup(child(ROOT, "a"), || Item::Root);
        t.lookup(child(ROOT, "a"), || Item::Root);
        t.forget(a, 1);
        assert!(t.get(a).is_some(), "one reference left");
        t.forget(a, 1);
        assert!(t.get(a).is_none());
    }

    #[test]
    fn hardlinks_share_a_number_per_snapshot() {
        let t = Table::new(vec![]);
        let k = |s: u8| Key::Hardlink {
            snapshot: SnapshotId([s; 32]),
            device: 5,
            inode: 77,
        };
        let (a, _) = t.lookup(k(1), || Item::Root);
        let (b, _) = t.lookup(k(1), || Item::Root);
        let (c, _) = t.lookup(k(2), || Item::Root);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn collisions_probe_to_the_next_free_number() {
        let t = Table::new(vec![]);
        let k1 = child(ROOT, "x");
        let home = k1.home();
        // Occupy k1's home with another key, as a collision would.
        t.lock().insert(
            home,
            Slot {
                key: child(ROOT, "other"),
                item: Arc::new(Item::Root),
                lookups: 1,
            },
        );
        let (n, _) = t.lookup(k1.clone(), || Item::Root);
        assert_eq!(n, next(home));
        assert_eq!(t.peek(&k1), n);
    }
}
