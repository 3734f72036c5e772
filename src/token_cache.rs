//! The cache of verified session JWTs: a repeated JWT skips signature verification and
//! claim parsing.
//!
//! Keyed by the whole token (equality compares every byte). Only tokens whose signature
//! and claims verified are inserted, so every key is a Stytch-signed JWT: its last bytes
//! are RSA signature bytes, uniformly distributed, and hashing just those is as good as
//! hashing all ~1.5 KB (an attacker can choose lookup keys, but cannot place entries).
//! Entries expire at their own deadline by the injected clock, checked on every read.
//!
//! `quick_cache` rather than `moka`: a hit is one sharded read lock and a hash probe,
//! with no per-read bookkeeping, which on the repeated-token path measured about
//! 0.45 µs per request less (BENCHMARKS.md).

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{Equivalent, UnitWeighter};

use crate::member::AuthenticatedMember;

/// Bytes of the key mixed into its hash: 48 base64url characters, 288 signature bits.
const HASHED_TAIL: usize = 48;

/// A [`BuildHasher`] whose hashers mix only the tail of each byte string written
/// (foldhash, randomly seeded per cache, underneath).
#[derive(Clone, Default)]
struct TailHashBuilder(foldhash::fast::RandomState);

struct TailHasher(foldhash::fast::FoldHasher<'static>);

impl BuildHasher for TailHashBuilder {
    type Hasher = TailHasher;

    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.0.build_hasher())
    }
}

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0
            .write(&bytes[bytes.len().saturating_sub(HASHED_TAIL)..]);
    }

    fn write_u8(&mut self, byte: u8) {
        self.0.write_u8(byte);
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

/// A lookup key borrowed from the raw cookie bytes: hashes like the `str` it equals,
/// so a lookup needs no UTF-8 check (keys are visible ASCII).
struct RawToken<'a>(&'a [u8]);

impl Hash for RawToken<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // What `impl Hash for str` writes.
        state.write(self.0);
        state.write_u8(0xff);
    }
}

impl Equivalent<Arc<str>> for RawToken<'_> {
    fn equivalent(&self, key: &Arc<str>) -> bool {
        self.0 == key.as_bytes()
    }
}

#[derive(Clone)]
struct Entry {
    member: AuthenticatedMember,
    /// Unix seconds from which the token is no longer trusted locally.
    valid_until: u64,
}

type Entries =
    Cache<Arc<str>, Entry, UnitWeighter, TailHashBuilder, DefaultLifecycle<Arc<str>, Entry>>;

/// Verified JWTs, size-bounded.
pub(crate) struct TokenCache {
    entries: Entries,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (at least 1).
    pub(crate) fn new(capacity: u64) -> Self {
        let capacity = capacity.max(1);
        Self {
            entries: Cache::with(
                crate::bounded_cache::capacity(capacity),
                capacity,
                UnitWeighter,
                TailHashBuilder::default(),
                DefaultLifecycle::default(),
            ),
        }
    }

    /// The member of a verified `jwt` still valid at `now` (unix seconds). Takes the
    /// raw cookie bytes: a hit is byte-identical to a token that was validated and
    /// verified when it was inserted.
    pub(crate) fn get(&self, jwt: &[u8], now: u64) -> Option<AuthenticatedMember> {
        let entry = self.entries.get(&RawToken(jwt))?;
        if now >= entry.valid_until {
            self.entries.remove(&RawToken(jwt));
            return None;
        }
        Some(entry.member)
    }

    /// Remembers a verified `jwt` until `valid_until` (unix seconds).
    pub(crate) fn insert(&self, jwt: &str, member: AuthenticatedMember, valid_until: u64) {
        self.entries.insert(
            Arc::from(jwt),
            Entry {
                member,
                valid_until,
            },
        );
    }

    /// Drops every token of a session (logout).
    pub(crate) fn remove_session(&self, member_session_id: &str) {
        self.entries
            .retain(|_, e| e.member.member_session_id() != member_session_id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::{AuthMethod, MemberData};
    use std::time::SystemTime;

    fn member(session: &str) -> AuthenticatedMember {
        AuthenticatedMember::new(MemberData {
            member_id: "member-test-1".into(),
            member_session_id: session.into(),
            organization_id: "organization-test-1".into(),
            organization_slug: "acme".into(),
            roles: vec![],
            authentication_factors: vec![],
            started_at: SystemTime::UNIX_EPOCH,
            expires_at: SystemTime::UNIX_EPOCH,
            custom_claims: Default::default(),
            method: AuthMethod::LocalJwt,
        })
    }

    #[test]
    fn keys_match_whole_tokens_even_when_tails_collide() {
        let cache = TokenCache::new(100);
        let tail = "s".repeat(HASHED_TAIL);
        let a = format!("header.payload-a.{tail}");
        let b = format!("header.payload-b.{tail}");
        let hasher = TailHashBuilder::default();
        assert_eq!(hasher.hash_one(a.as_str()), hasher.hash_one(b.as_str()));
        assert_eq!(
            hasher.hash_one(a.as_str()),
            hasher.hash_one(RawToken(a.as_bytes())),
            "raw lookups hash like the stored keys"
        );
        cache.insert(&a, member("ms-a"), 100);
        assert_eq!(
            cache.get(a.as_bytes(), 10).unwrap().member_session_id(),
            "ms-a"
        );
        assert!(
            cache.get(b.as_bytes(), 10).is_none(),
            "same tail, different token"
        );
    }

    #[test]
    fn entries_expire_by_the_given_clock() {
        let cache = TokenCache::new(100);
        cache.insert("t.t.t", member("ms"), 100);
        assert!(cache.get(b"t.t.t", 99).is_some());
        assert!(cache.get(b"t.t.t", 100).is_none());
        assert!(
            cache.get(b"t.t.t", 50).is_none(),
            "an expired entry is gone"
        );
    }

    #[test]
    fn logout_removes_every_token_of_the_session() {
        let cache = TokenCache::new(100);
        cache.insert("a.a.a", member("ms-1"), 100);
        cache.insert("b.b.b", member("ms-1"), 100);
        cache.insert("c.c.c", member("ms-2"), 100);
        cache.remove_session("ms-1");
        assert!(cache.get(b"a.a.a", 1).is_none() && cache.get(b"b.b.b", 1).is_none());
        assert!(cache.get(b"c.c.c", 1).is_some());
    }

    #[test]
    fn size_is_bounded() {
        let cache = TokenCache::new(50);
        for i in 0..1_000 {
            cache.insert(&format!("h.p.{i:0>64}"), member("ms"), 100);
        }
        assert!(cache.len() <= 50, "{}", cache.len());
    }
}
