//! A concurrent table of records keyed by a string, each with a dense `u32` id.
//!
//! Records (user ids, destination addresses) are interned: other records refer to them by id (4
//! bytes) rather than by an `Arc<str>` (16 bytes, and a pointer to follow to compare). The
//! table is split into [`SHARDS`] shards, each behind its own lock: a slab of records indexed
//! by id, and an index (a `hashbrown` table of 4-byte slot numbers, hashed by the record's key)
//! to find a record by key. The key lives inside the record itself, not a second time in the
//! index. An id is `slot << SHARD_BITS | shard`; a removed record's slot is reused by the next
//! insert in that shard, which is why the state counts references to ids (see `super`) and
//! removes a record only when nothing refers to it.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use hashbrown::HashTable;
use parking_lot::RwLock;

/// A record stored in a [`Table`]: it knows its key.
pub(crate) trait Keyed {
    /// The key's bytes (UTF-8; compared and hashed as bytes, not checked again).
    fn key_bytes(&self) -> &[u8];
}

const SHARD_BITS: u32 = 5;
/// Number of shards (locks): more than threads, so that writers rarely meet.
pub(crate) const SHARDS: usize = 1 << SHARD_BITS;
/// Slots per shard at most (ids are `u32`).
const MAX_SLOTS: usize = 1 << (32 - SHARD_BITS);

pub(crate) struct Table<R> {
    shards: Box<[RwLock<Shard<R>>]>,
    /// This table's number in the process (from [`NEXT_TABLE`]), for [`Version`]s.
    number: u64,
    /// Seeded once per process (keys come from outside), the same for every table, so that a
    /// table decoded from a snapshot can take the place of a live one.
    hasher: super::Hasher,
}

pub(crate) struct Shard<R> {
    /// Counts the times the shard was locked for writing: a record read at one count is
    /// unchanged while the count stays (see [`Version`]).
    epoch: u64,
    index: HashTable<u32>,
    slots: Vec<Option<R>>,
    /// Empty slots, reused first.
    free: Vec<u32>,
}

impl<R> Default for Shard<R> {
    fn default() -> Shard<R> {
        Shard {
            epoch: 0,
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<R> Default for Table<R> {
    fn default() -> Table<R> {
        Table {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            number: NEXT_TABLE.fetch_add(1, Ordering::Relaxed),
            hasher: process_hasher(),
        }
    }
}

/// Numbers the tables of the process (never reused, so that a [`Version`] of a dropped table
/// never matches a live one).
static NEXT_TABLE: AtomicU64 = AtomicU64::new(0);

/// A record's version: its table, its id and its shard's write count. Equal versions mean the
/// record was not changed in between (every change takes the shard's write lock, which
/// counts), so that what one lock found out about it holds under the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    table: u64,
    id: u32,
    epoch: u64,
}

/// The shard's write lock, counted (see [`Shard::epoch`]).
fn write_lock<R>(lock: &RwLock<Shard<R>>) -> parking_lot::RwLockWriteGuard<'_, Shard<R>> {
    let mut guard = lock.write();
    guard.epoch = guard.epoch.wrapping_add(1);
    guard
}

fn process_hasher() -> super::Hasher {
    static HASHER: std::sync::OnceLock<super::Hasher> = std::sync::OnceLock::new();
    HASHER.get_or_init(super::Hasher::default).clone()
}

fn split(id: u32) -> (usize, usize) {
    ((id as usize) & (SHARDS - 1), (id >> SHARD_BITS) as usize)
}

fn join(shard: usize, slot: usize) -> u32 {
    ((slot << SHARD_BITS) | shard) as u32
}

impl<R: Keyed> Shard<R> {
    fn find(&self, hash: u64, key: &str) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(
                hash,
                |&i| matches!(slots.get(i as usize), Some(Some(r)) if r.key_bytes() == key.as_bytes()),
            )
            .map(|&i| i as usize)
    }

    /// Puts `record` in a free slot (or a new one) and indexes it; `None` when the shard is full.
    fn insert(&mut self, hash: u64, record: R, hasher: &super::Hasher) -> Option<usize> {
        let slot = match self.free.pop() {
            Some(slot) => slot as usize,
            None if self.slots.len() < MAX_SLOTS => {
                self.slots.push(None);
                self.slots.len() - 1
            }
            None => return None,
        };
        let cell = self.slots.get_mut(slot)?;
        *cell = Some(record);
        let slots = &self.slots;
        self.index
            .insert_unique(hash, slot as u32, |&i| match slots.get(i as usize) {
                Some(Some(r)) => hasher.hash_one(r.key_bytes()),
                _ => 0,
            });
        Some(slot)
    }

    /// Removes the record in `slot`, keeping the slot for reuse.
    fn remove(&mut self, slot: usize, hasher: &super::Hasher) -> Option<R> {
        let record = self.slots.get_mut(slot)?.take()?;
        let hash = hasher.hash_one(record.key_bytes());
        if let Ok(entry) = self.index.find_entry(hash, |&i| i as usize == slot) {
            entry.remove();
        }
        self.free.push(slot as u32);
        Some(record)
    }
}

impl<R: Keyed> Table<R> {
    fn locate(&self, key: &str) -> (u64, usize) {
        let hash = self.hasher.hash_one(key.as_bytes());
        // Bits the index does not use for its own buckets and tags.
        (hash, (hash >> 32) as usize & (SHARDS - 1))
    }

    /// Calls `read` with the record of `key` and its id, under the shard's read lock.
    pub(crate) fn read<T>(&self, key: &str, read: impl FnOnce(u32, &R) -> T) -> Option<T> {
        let (hash, shard) = self.locate(key);
        let guard = self.shards.get(shard)?.read();
        let slot = guard.find(hash, key)?;
        let record = guard.slots.get(slot)?.as_ref()?;
        Some(read(join(shard, slot), record))
    }

    /// [`Table::read`], with the record's [`Version`].
    pub(crate) fn read_versioned<T>(
        &self,
        key: &str,
        read: impl FnOnce(u32, Version, &R) -> T,
    ) -> Option<T> {
        let (hash, shard) = self.locate(key);
        let guard = self.shards.get(shard)?.read();
        let slot = guard.find(hash, key)?;
        let record = guard.slots.get(slot)?.as_ref()?;
        let id = join(shard, slot);
        let version = Version {
            table: self.number,
            id,
            epoch: guard.epoch,
        };
        Some(read(id, version, record))
    }

    /// [`Table::write`], with the record's [`Version`] before this change (`None` for a
    /// record inserted now).
    pub(crate) fn write_versioned<T>(
        &self,
        key: &str,
        new: impl FnOnce() -> R,
        write: impl FnOnce(u32, Option<Version>, &mut R) -> T,
    ) -> Option<T> {
        let (hash, shard) = self.locate(key);
        let mut guard = write_lock(self.shards.get(shard)?);
        let (slot, existed) = match guard.find(hash, key) {
            Some(slot) => (slot, true),
            None => (guard.insert(hash, new(), &self.hasher)?, false),
        };
        let id = join(shard, slot);
        let version = existed.then(|| Version {
            table: self.number,
            id,
            epoch: guard.epoch.wrapping_sub(1),
        });
        let record = guard.slots.get_mut(slot)?.as_mut()?;
        Some(write(id, version, record))
    }

    /// Calls `write` with the record of `key` (inserted with `new` when missing) and its id,
    /// under the shard's write lock; `None` only when the shard has no free id left.
    pub(crate) fn write<T>(
        &self,
        key: &str,
        new: impl FnOnce() -> R,
        write: impl FnOnce(u32, &mut R) -> T,
    ) -> Option<T> {
        let (hash, shard) = self.locate(key);
        let mut guard = write_lock(self.shards.get(shard)?);
        let slot = match guard.find(hash, key) {
            Some(slot) => slot,
            None => guard.insert(hash, new(), &self.hasher)?,
        };
        let record = guard.slots.get_mut(slot)?.as_mut()?;
        Some(write(join(shard, slot), record))
    }

    /// Inserts `record` under `key` unless the key is already there; its id, or `None` when
    /// the key was there (or the shard has no free id left).
    pub(crate) fn insert(&self, key: &str, record: R) -> Option<u32> {
        let (hash, shard) = self.locate(key);
        let mut guard = write_lock(self.shards.get(shard)?);
        if guard.find(hash, key).is_some() {
            return None;
        }
        let slot = guard.insert(hash, record, &self.hasher)?;
        Some(join(shard, slot))
    }

    /// Calls `read` with the record of `id`, when there is one.
    pub(crate) fn read_id<T>(&self, id: u32, read: impl FnOnce(&R) -> T) -> Option<T> {
        let (shard, slot) = split(id);
        let guard = self.shards.get(shard)?.read();
        let record = guard.slots.get(slot)?.as_ref()?;
        Some(read(record))
    }

    /// Calls `write` with the record of `id`, when there is one.
    pub(crate) fn write_id<T>(&self, id: u32, write: impl FnOnce(&mut R) -> T) -> Option<T> {
        let (shard, slot) = split(id);
        let mut guard = write_lock(self.shards.get(shard)?);
        let record = guard.slots.get_mut(slot)?.as_mut()?;
        Some(write(record))
    }

    /// Removes every record for which `keep` says no, one shard at a time; `removed` gets each
    /// removed record after the shard's lock is released.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&mut R) -> bool, mut removed: impl FnMut(R)) {
        let mut gone = Vec::new();
        for shard in self.shards.iter() {
            {
                let mut guard = write_lock(shard);
                for slot in 0..guard.slots.len() {
                    let drop_it = match guard.slots.get_mut(slot) {
                        Some(Some(record)) => !keep(record),
                        _ => false,
                    };
                    if drop_it {
                        gone.extend(guard.remove(slot, &self.hasher));
                    }
                }
            }
            gone.drain(..).for_each(&mut removed);
        }
    }

    /// Calls `visit` with every record and its id, one shard at a time (under its read lock).
    pub(crate) fn for_each(&self, mut visit: impl FnMut(u32, &R)) {
        for (shard, lock) in self.shards.iter().enumerate() {
            let guard = lock.read();
            for (slot, record) in guard.slots.iter().enumerate() {
                if let Some(record) = record {
                    visit(join(shard, slot), record);
                }
            }
        }
    }

    /// Calls `change` with every record and its id, one shard at a time (under its write lock).
    pub(crate) fn for_each_mut(&self, mut change: impl FnMut(u32, &mut R)) {
        for (shard, lock) in self.shards.iter().enumerate() {
            let mut guard = write_lock(lock);
            for (slot, record) in guard.slots.iter_mut().enumerate() {
                if let Some(record) = record {
                    change(join(shard, slot), record);
                }
            }
        }
    }

    /// A zero per slot, shard by shard: a dense map from ids to counts.
    pub(crate) fn zeroed(&self) -> Vec<Vec<u32>> {
        (0..SHARDS)
            .map(|shard| vec![0; self.slots(shard)])
            .collect()
    }

    /// Makes room for about `records` more records (keys spread evenly over the shards), so
    /// that filling a table from a snapshot does not grow and rehash it step by step.
    pub(crate) fn reserve(&self, records: usize) {
        let per_shard = records / SHARDS + records / SHARDS / 8 + 16;
        for lock in self.shards.iter() {
            let mut guard = write_lock(lock);
            let Shard { index, slots, .. } = &mut *guard;
            slots.reserve(per_shard);
            let hasher = &self.hasher;
            index.reserve(per_shard, |&i| match slots.get(i as usize) {
                Some(Some(r)) => hasher.hash_one(r.key_bytes()),
                _ => 0,
            });
        }
    }

    /// Number of records.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = s.read();
                s.slots.len() - s.free.len()
            })
            .sum()
    }

    /// Number of slots of one shard (used or free), for a save that walks it slot by slot.
    pub(crate) fn slots(&self, shard: usize) -> usize {
        self.shards.get(shard).map_or(0, |s| s.read().slots.len())
    }

    /// Calls `visit` with the record in slot `slot` of `shard` (`None` when free), under the
    /// shard's read lock.
    pub(crate) fn read_slot<T>(
        &self,
        shard: usize,
        slot: usize,
        visit: impl FnOnce(Option<&R>) -> T,
    ) -> T {
        match self.shards.get(shard) {
            Some(lock) => visit(lock.read().slots.get(slot).and_then(Option::as_ref)),
            None => visit(None),
        }
    }

    /// The shard a key lives in.
    #[cfg(test)]
    pub(crate) fn shard_of(&self, key: &str) -> usize {
        self.locate(key).1
    }

    /// Takes every record of `other` (built by this process: all tables share one hasher),
    /// dropping this table's, one shard at a time.
    pub(crate) fn replace_with(&self, other: Table<R>) {
        for (mine, theirs) in self.shards.iter().zip(other.shards.into_vec()) {
            let mut guard = write_lock(mine);
            let mut theirs = theirs.into_inner();
            // Counted on from this table's count, not the other's.
            theirs.epoch = guard.epoch;
            let old = std::mem::replace(&mut *guard, theirs);
            drop(guard);
            drop(old);
        }
    }
}

/// The count of `id` in a map made by [`Table::zeroed`].
pub(crate) fn count_of(counts: &mut [Vec<u32>], id: u32) -> Option<&mut u32> {
    let (shard, slot) = split(id);
    counts.get_mut(shard)?.get_mut(slot)
}

/// The id of a slot in a shard.
pub(crate) fn id_of(shard: usize, slot: usize) -> u32 {
    join(shard, slot)
}

/// The shard and slot of an id (the inverse of [`id_of`]).
pub(crate) fn split_id(id: u32) -> (usize, usize) {
    split(id)
}
