//! A per-replica cache of accepted sessions and of users' MFA state, so that a signed-in request
//! costs no database read.
//!
//! What keeps it honest is the store's session epoch ([`Store::session_epoch`]): it moves after
//! every committed transaction that revokes a session or changes a user or their second factor,
//! in this process and (on PostgreSQL, through `LISTEN`) in every other replica. An entry is used
//! only while the epoch is still the one read *before* the entry was loaded, so a revocation
//! that commits while a request is reading the old row cannot leave the old row cached. And an
//! entry is never used for longer than the TTL, which bounds what the epoch cannot see: a change
//! made by another process on the same SQLite file, or announced while a replica's listener was
//! reconnecting.
//!
//! Only acceptance is cached. Every refusal (unknown, revoked, idle, expired, disabled) is
//! decided on a fresh read.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bulwark_crypto::TokenHash;
use bulwark_types::UserId;

use crate::StoreError;
use crate::model::Session;
use crate::ports::Store;

/// How many entries each map holds at most; past this, stale entries are dropped, then all.
const MAX_ENTRIES: usize = 100_000;

/// The longest TTL the configuration may ask for.
pub const MAX_TTL: Duration = Duration::from_secs(5);

struct Entry<V> {
    value: V,
    epoch: u64,
    loaded: Instant,
}

/// A map whose entries are valid for one epoch and at most `ttl`.
struct EpochMap<K, V> {
    entries: Mutex<HashMap<K, Entry<V>>>,
}

impl<K: Eq + Hash, V: Clone> EpochMap<K, V> {
    fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Entry<V>>> {
        // A panic while holding the lock cannot leave a half-written entry behind: recover.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, key: &K, epoch: u64, ttl: Duration) -> Option<V> {
        let map = self.lock();
        let entry = map.get(key)?;
        (entry.epoch == epoch && entry.loaded.elapsed() < ttl).then(|| entry.value.clone())
    }

    /// Stores `value`, loaded after the epoch was `epoch`.
    fn put(&self, key: K, value: V, epoch: u64, ttl: Duration) {
        let mut map = self.lock();
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, e| e.epoch == epoch && e.loaded.elapsed() < ttl);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(
            key,
            Entry {
                value,
                epoch,
                loaded: Instant::now(),
            },
        );
    }

    fn update(&self, key: &K, f: impl FnOnce(&mut V)) {
        if let Some(entry) = self.lock().get_mut(key) {
            f(&mut entry.value);
        }
    }

    fn remove(&self, key: &K) {
        self.lock().remove(key);
    }
}

/// Accepted sessions by token hash, and MFA state by user, for at most `ttl` each.
pub struct SessionCache {
    ttl: Duration,
    sessions: EpochMap<[u8; 32], Session>,
    mfa: EpochMap<UserId, (bool, u32)>,
}

impl SessionCache {
    /// A cache whose entries live at most `ttl` (capped at [`MAX_TTL`]); zero caches nothing.
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl: ttl.min(MAX_TTL),
            sessions: EpochMap::new(),
            mfa: EpochMap::new(),
        }
    }

    /// The cached session for `hash`, if still trusted at `epoch`.
    pub(crate) fn session(&self, hash: &TokenHash, epoch: u64) -> Option<Session> {
        if self.ttl.is_zero() {
            return None;
        }
        let found = self.sessions.get(hash.as_bytes(), epoch, self.ttl);
        let result = if found.is_some() { "hit" } else { "miss" };
        crate::metrics::metrics()
            .cache_lookups
            .inc(&["session", result]);
        found
    }

    /// Caches an accepted session, read after the epoch was `epoch`.
    pub(crate) fn accept(&self, session: &Session, epoch: u64) {
        if !self.ttl.is_zero() {
            self.sessions.put(
                *session.token_hash.as_bytes(),
                session.clone(),
                epoch,
                self.ttl,
            );
        }
    }

    /// Records a write of the session's `last_seen_at` in the cached copy.
    pub(crate) fn touched(&self, session: &Session) {
        self.sessions.update(session.token_hash.as_bytes(), |s| {
            s.last_seen_at = session.last_seen_at
        });
    }

    /// Drops the entry for `hash` (it was refused on a fresh read).
    pub(crate) fn forget(&self, hash: &TokenHash) {
        self.sessions.remove(hash.as_bytes());
    }

    /// The user's MFA state (enrolled, backup codes left), cached like sessions.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn mfa_state(
        &self,
        store: &dyn Store,
        user: UserId,
    ) -> Result<(bool, u32), StoreError> {
        let epoch = store.session_epoch();
        if !self.ttl.is_zero()
            && let Some(state) = self.mfa.get(&user, epoch, self.ttl)
        {
            return Ok(state);
        }
        let state = store.mfa_status(user).await?;
        if !self.ttl.is_zero() {
            self.mfa.put(user, state, epoch, self.ttl);
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_trusted_for_its_epoch_only() {
        let map = EpochMap::new();
        let ttl = Duration::from_secs(5);
        map.put(1_u8, "a", 7, ttl);
        assert_eq!(map.get(&1, 7, ttl), Some("a"));
        assert_eq!(map.get(&1, 8, ttl), None, "the epoch moved");
        assert_eq!(map.get(&1, 7, Duration::ZERO), None, "past its TTL");
        map.remove(&1);
        assert_eq!(map.get(&1, 7, ttl), None);
    }

    #[test]
    fn a_full_map_drops_stale_entries_first() {
        let map = EpochMap::new();
        let ttl = Duration::from_secs(5);
        for i in 0..MAX_ENTRIES {
            map.put(i, (), 1, ttl);
        }
        map.put(MAX_ENTRIES, (), 2, ttl);
        assert_eq!(map.lock().len(), 1, "every entry of epoch 1 was stale");
        assert_eq!(map.get(&MAX_ENTRIES, 2, ttl), Some(()));
    }
}
