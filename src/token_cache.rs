//! The cache of verified session JWTs: a repeated JWT skips signature verification and
//! claim parsing.
//!
//! Keyed by the whole token (equality compares every byte). Only tokens whose signature
//! and claims verified are inserted, so every key is a Stytch-signed JWT: its last bytes
//! are RSA signature bytes, uniformly distributed, and hashing just those is as good as
//! hashing all ~1.5 KB (an attacker can choose lookup keys, but cannot place entries).
//! Entries expire at their own deadline by the injected clock, checked on every read.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use crate::member::AuthenticatedMember;

/// Bytes of the key mixed into its hash: 48 base64url characters, 288 signature bits.
const HASHED_TAIL: usize = 48;

/// A [`BuildHasher`] whose hashers mix only the tail of each byte string written
/// (keyed SipHash from the standard library underneath).
#[derive(Clone, Default)]
struct TailHashBuilder(std::collections::hash_map::RandomState);

struct TailHasher(std::collections::hash_map::DefaultHasher);

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

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

struct Entry {
    member: AuthenticatedMember,
    /// Unix seconds from which the token is no longer trusted locally.
    valid_until: u64,
}

/// Verified JWTs, size-bounded.
pub(crate) struct TokenCache {
    entries: moka::sync::Cache<Arc<str>, Arc<Entry>, TailHashBuilder>,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens; `ttl` bounds memory in real time, the
    /// injected clock decides validity.
    pub(crate) fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .support_invalidation_closures()
                .build_with_hasher(TailHashBuilder::default()),
        }
    }

    /// The member of a verified `jwt` still valid at `now` (unix seconds).
    pub(crate) fn get(&self, jwt: &str, now: u64) -> Option<AuthenticatedMember> {
        let entry = self.entries.get(jwt)?;
        if now >= entry.valid_until {
            self.entries.invalidate(jwt);
            return None;
        }
        Some(entry.member.clone())
    }

    /// Remembers a verified `jwt` until `valid_until` (unix seconds).
    pub(crate) fn insert(&self, jwt: &str, member: AuthenticatedMember, valid_until: u64) {
        self.entries.insert(
            Arc::from(jwt),
            Arc::new(Entry {
                member,
                valid_until,
            }),
        );
    }

    /// Drops every token of a session (logout).
    pub(crate) fn remove_session(&self, member_session_id: &str) {
        let id = member_session_id.to_owned();
        // Fails only without `support_invalidation_closures`, which `new` sets. Revoked
        // sessions are refused on every hit anyway; this frees the memory.
        let _ = self
            .entries
            .invalidate_entries_if(move |_, e| e.member.member_session_id() == id);
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
        let cache = TokenCache::new(100, Duration::from_secs(60));
        let tail = "s".repeat(HASHED_TAIL);
        let a = format!("header.payload-a.{tail}");
        let b = format!("header.payload-b.{tail}");
        let hasher = TailHashBuilder::default();
        assert_eq!(hasher.hash_one(a.as_str()), hasher.hash_one(b.as_str()));
        cache.insert(&a, member("ms-a"), 100);
        assert_eq!(cache.get(&a, 10).unwrap().member_session_id(), "ms-a");
        assert!(cache.get(&b, 10).is_none(), "same tail, different token");
    }

    #[test]
    fn entries_expire_by_the_given_clock() {
        let cache = TokenCache::new(100, Duration::from_secs(60));
        cache.insert("t.t.t", member("ms"), 100);
        assert!(cache.get("t.t.t", 99).is_some());
        assert!(cache.get("t.t.t", 100).is_none());
        assert!(cache.get("t.t.t", 50).is_none(), "an expired entry is gone");
    }

    #[test]
    fn logout_removes_every_token_of_the_session() {
        let cache = TokenCache::new(100, Duration::from_secs(60));
        cache.insert("a.a.a", member("ms-1"), 100);
        cache.insert("b.b.b", member("ms-1"), 100);
        cache.insert("c.c.c", member("ms-2"), 100);
        cache.remove_session("ms-1");
        cache.entries.run_pending_tasks();
        assert!(cache.get("a.a.a", 1).is_none() && cache.get("b.b.b", 1).is_none());
        assert!(cache.get("c.c.c", 1).is_some());
    }

    #[test]
    fn size_is_bounded() {
        let cache = TokenCache::new(50, Duration::from_secs(60));
        for i in 0..1_000 {
            cache.insert(&format!("h.p.{i:0>64}"), member("ms"), 100);
        }
        cache.entries.run_pending_tasks();
        assert!(
            cache.entries.entry_count() <= 50,
            "{}",
            cache.entries.entry_count()
        );
    }
}
