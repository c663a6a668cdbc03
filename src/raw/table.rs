//! The store behind one `HashMap` partition.
//!
//! PLACEHOLDER: a `Mutex<std::collections::HashMap>` reference implementation with the final
//! API, so that the safe handle can be built and tested against it. The lock-free
//! open-addressing table replaces the body of this module; the API and its doc comments are
//! the contract.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::entry::Entry;
use std::sync::Mutex;

/// What a write stores.
#[derive(Debug)]
pub enum Write<V> {
    /// `put`: always stores; the entry's version and `updates` become 0.
    Put(V),
    /// `put_newer`: stores iff the key has no value in this generation or `version` is
    /// strictly greater than the stored one; a replacement adds 1 to `updates`.
    Newer(V, u64),
}

/// What a successful write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The key had no value in the current generation (new, or deleted earlier in it):
    /// the write took one unit of room (`admit` said yes).
    Inserted,
    /// The key's value was replaced.
    Replaced,
    /// `Write::Newer` with a version not newer than the stored one: nothing changed, the
    /// value was dropped.
    Ignored,
}

/// Why a write was refused; the key and value come back with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The write needed room (see [`Written::Inserted`]) and `admit` refused it.
    Full,
    /// The store is closed for good.
    Closed,
}

/// Hashes are computed by the caller; the placeholder's inner map only re-uses them.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 hashes are stored")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

struct Value<V> {
    value: V,
    version: u64,
    updates: u64,
}

struct Inner<K, V> {
    map: HashMap<u64, Vec<(K, Option<Value<V>>)>, BuildHasherDefault<PassThrough>>,
    /// Keys with a value.
    live: usize,
    closed: bool,
}

/// One partition's coalescing store: writers from any thread; one taker at a time.
pub struct Tables<K, V> {
    inner: Mutex<Inner<K, V>>,
}

impl<K: Eq, V> Default for Tables<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Eq, V> Tables<K, V> {
    /// An empty store.
    pub fn new() -> Self {
        Tables {
            inner: Mutex::new(Inner {
                map: HashMap::default(),
                live: 0,
                closed: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `key` (whose hash is `hash`). `admit` is called, at most once, only when the
    /// write would give a value to a key that has none in the current generation; `false`
    /// refuses the write with [`Refused::Full`].
    pub fn write(
        &self,
        hash: u64,
        key: K,
        write: Write<V>,
        admit: impl FnOnce() -> bool,
    ) -> Result<Written, (Refused, K, V)> {
        let mut inner = self.lock();
        let (value, version) = match write {
            Write::Put(v) => (v, None),
            Write::Newer(v, ver) => (v, Some(ver)),
        };
        if inner.closed {
            return Err((Refused::Closed, key, value));
        }
        let bucket = inner.map.entry(hash).or_default();
        let pos = bucket.iter().position(|(k, _)| *k == key);
        let current = pos.and_then(|p| bucket[p].1.as_mut());
        match current {
            Some(stored) => match version {
                None => {
                    *stored = Value {
                        value,
                        version: 0,
                        updates: 0,
                    };
                    Ok(Written::Replaced)
                }
                Some(v) if v > stored.version => {
                    let updates = stored.updates + 1;
                    *stored = Value {
                        value,
                        version: v,
                        updates,
                    };
                    Ok(Written::Replaced)
                }
                Some(_) => Ok(Written::Ignored),
            },
            None => {
                if !admit() {
                    return Err((Refused::Full, key, value));
                }
                let fresh = Some(Value {
                    value,
                    version: version.unwrap_or(0),
                    updates: 0,
                });
                match pos {
                    Some(p) => bucket[p].1 = fresh,
                    None => bucket.push((key, fresh)),
                }
                inner.live += 1;
                Ok(Written::Inserted)
            }
        }
    }

    /// A clone of the value of `key` in the current generation.
    pub fn get<Q>(&self, hash: u64, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
        V: Clone,
    {
        let inner = self.lock();
        inner.map.get(&hash).and_then(|bucket| {
            bucket
                .iter()
                .find(|(k, _)| k.borrow() == key)
                .and_then(|(_, v)| v.as_ref().map(|v| v.value.clone()))
        })
    }

    /// Removes the value of `key` from the current generation; true if it had one. The
    /// value is dropped before this returns.
    pub fn delete<Q>(&self, hash: u64, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let mut inner = self.lock();
        let removed = inner.map.get_mut(&hash).and_then(|bucket| {
            bucket
                .iter_mut()
                .find(|(k, _)| k.borrow() == key)
                .and_then(|(_, v)| v.take())
        });
        if removed.is_some() {
            inner.live -= 1;
        }
        drop(inner);
        removed.is_some()
    }

    /// Keys with a value in the current generation.
    pub fn len(&self) -> usize {
        self.lock().live
    }

    /// No key has a value in the current generation.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts a new, empty generation and moves every entry of the old one (keys with a
    /// value) into `out`; returns how many.
    pub fn take(&self, out: &mut Vec<Entry<K, V>>) -> usize {
        let old = {
            let mut inner = self.lock();
            inner.live = 0;
            std::mem::take(&mut inner.map)
        };
        let before = out.len();
        for (key, value) in old.into_values().flatten() {
            if let Some(v) = value {
                out.push(Entry {
                    key,
                    value: v.value,
                    version: v.version,
                    updates: v.updates,
                });
            }
        }
        out.len() - before
    }

    /// Like `take`, and every later write is refused with [`Refused::Closed`].
    pub fn close_for_good(&self, out: &mut Vec<Entry<K, V>>) -> usize {
        self.lock().closed = true;
        self.take(out)
    }
}
