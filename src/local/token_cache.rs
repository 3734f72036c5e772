//! The cache of verified JWTs (member sessions and machine tokens alike): a repeated
//! JWT skips signature verification and claim parsing.
//!
//! Keyed by the whole token (equality compares every byte). Only tokens whose signature
//! and claims verified are inserted, so every key is a Stytch-signed JWT: its last bytes
//! are RSA signature bytes, uniformly distributed, and hashing just those is as good as
//! hashing all ~1.5 KB (an attacker can choose lookup keys, but cannot place entries).
//! Entries expire at their own deadline, counted on the injected clock's monotonic
//! reading and checked on every read: a token is trusted from the cache for at most
//! the time it had left when it was verified (at most `max_token_age`) of real time,
//! whatever the wall clock does meanwhile (a step back does not stretch it).
//!
//! `quick_cache` rather than `moka`: a hit is one sharded read lock and a hash probe,
//! with no per-read bookkeeping, which on the repeated-token path measured about
//! 0.45 µs per request less (BENCHMARKS.md).
//!
//! Hits are not looked up in the logout denylist, nor in the key set. Instead each
//! entry carries the epoch read before its last check, and every logout and every key
//! retirement bumps the epoch (after denylisting the session or storing the new key
//! set, before purging the entries concerned): an entry whose epoch is not the current
//! one must be checked again ([`Lookup::Unchecked`]). So a JWT whose verification
//! raced a logout or a key retirement, and was inserted after the purge, is never
//! trusted without a check once the logout (or the key set's store) is done.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{Equivalent, UnitWeighter};

use crate::caller::Caller;

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

/// What a verification established about a token, kept with it.
#[derive(Clone)]
pub(crate) struct Verified {
    /// Who the token is: its kind is checked against where it was sent on every hit.
    pub(crate) caller: Caller,
    /// The `kid` of the key that verified the token.
    pub(crate) kid: Arc<str>,
    /// Its `iat` (unix seconds).
    pub(crate) issued_at: u64,
    /// The monotonic reading from which the token is no longer trusted locally.
    pub(crate) trusted_until: Instant,
}

#[derive(Clone)]
struct Entry {
    verified: Verified,
    /// The epoch read before the token was last checked (revocations, key set).
    checked_at: u64,
}

/// A cached token's caller.
pub(crate) enum Lookup {
    /// Checked against the denylist since the last logout: trust it.
    Checked(Caller),
    /// A logout or a key retirement happened since the entry was last checked: check
    /// the member's session and the token's `kid`, then [`TokenCache::mark_checked`]
    /// (or drop the entry with [`TokenCache::remove`]).
    Unchecked(Unchecked),
}

/// An entry to check against the denylist and the key set again.
pub(crate) struct Unchecked(Entry);

impl Unchecked {
    /// What the token's verification established.
    pub(crate) fn verified(&self) -> &Verified {
        &self.0.verified
    }
}

type Entries =
    Cache<Arc<str>, Entry, UnitWeighter, TailHashBuilder, DefaultLifecycle<Arc<str>, Entry>>;

/// Verified JWTs, size-bounded.
pub(crate) struct TokenCache {
    entries: Entries,
    /// Bumped by every logout and every key retirement.
    epoch: AtomicU64,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = crate::util::bounded_cache::capacity(capacity);
        Self {
            entries: Cache::with(
                capacity,
                // Each entry weighs 1.
                u64::try_from(capacity).unwrap_or(u64::MAX),
                UnitWeighter,
                TailHashBuilder::default(),
                DefaultLifecycle::default(),
            ),
            epoch: AtomicU64::new(0),
        }
    }

    /// The epoch: read it before checking a session against the denylist (and a key
    /// against the key set), and store that value with the entry
    /// ([`insert`](Self::insert), [`mark_checked`](Self::mark_checked)).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The caller of a verified `jwt` still trusted at the monotonic reading `now`.
    /// Takes the raw cookie bytes: a hit is byte-identical to a token that was
    /// validated and verified when it was inserted.
    pub(crate) fn get(&self, jwt: &[u8], now: Instant) -> Option<Lookup> {
        let epoch = self.epoch();
        let entry = self.entries.get(&RawToken(jwt))?;
        if now >= entry.verified.trusted_until {
            self.entries.remove(&RawToken(jwt));
            return None;
        }
        Some(if entry.checked_at == epoch {
            Lookup::Checked(entry.verified.caller)
        } else {
            Lookup::Unchecked(Unchecked(entry))
        })
    }

    /// Remembers `jwt`, as `verified`, until `verified.trusted_until` (monotonic);
    /// `checked_at` is the [`epoch`](Self::epoch) read before its session was found not
    /// revoked.
    pub(crate) fn insert(&self, jwt: &str, verified: Verified, checked_at: u64) {
        self.entries.insert(
            Arc::from(jwt),
            Entry {
                verified,
                checked_at,
            },
        );
    }

    /// Records that the session of an [`Unchecked`] entry was found not denylisted
    /// after reading the epoch `checked_at`, and returns its caller. A purged entry is
    /// not brought back; one replaced meanwhile is overwritten with this older check,
    /// which at worst costs another check.
    pub(crate) fn mark_checked(
        &self,
        jwt: &[u8],
        Unchecked(entry): Unchecked,
        checked_at: u64,
    ) -> Caller {
        let caller = entry.verified.caller.clone();
        // The key equals a token that was validated (visible ASCII) when inserted.
        if let Ok(jwt) = std::str::from_utf8(jwt) {
            let _ = self.entries.replace(
                Arc::from(jwt),
                Entry {
                    checked_at,
                    ..entry
                },
                true,
            );
        }
        caller
    }

    /// Drops one token.
    pub(crate) fn remove(&self, jwt: &[u8]) {
        self.entries.remove(&RawToken(jwt));
    }

    /// Drops every token of a session (logout). Call it after the session is on the
    /// denylist: it starts a new epoch first, so that an entry inserted by a
    /// verification that checked the denylist before the logout is checked again.
    pub(crate) fn remove_session(&self, member_session_id: &str) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.retain(|_, e| match &e.verified.caller {
            Caller::Member(member) => member.member_session_id() != member_session_id,
            _ => true,
        });
    }

    /// Drops every token verified with one of the keys `retired` (no longer in the key
    /// set). Call it after the new key set is stored: it starts a new epoch first, so
    /// that an entry inserted by a verification with the old keys is checked again.
    pub(crate) fn remove_keys(&self, retired: &[Arc<str>]) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries
            .retain(|_, e| !retired.contains(&e.verified.kid));
    }

    /// Starts a new epoch: every entry is checked again on its next hit.
    pub(crate) fn check_all_again(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// How many tokens are held.
    #[cfg(any(test, feature = "metrics"))]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::{AuthMethod, AuthenticatedMember, MemberData};
    use std::time::{Duration, SystemTime};

    /// The monotonic reading `secs` into the test.
    fn t(secs: u64) -> Instant {
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *ORIGIN.get_or_init(Instant::now) + Duration::from_secs(secs)
    }

    fn kid(kid: &str) -> Arc<str> {
        Arc::from(kid)
    }

    /// A verified token of `session`, by key `kid`, trusted until `until` seconds in.
    fn verified(session: &str, kid_: &str, until: u64) -> Verified {
        Verified {
            caller: Caller::Member(member(session)),
            kid: kid(kid_),
            issued_at: 0,
            trusted_until: t(until),
        }
    }

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
        cache.insert(&a, verified("ms-a", "k1", 100), cache.epoch());
        assert_eq!(checked(&cache, a.as_bytes(), 10).unwrap(), "ms-a");
        assert!(
            cache.get(b.as_bytes(), t(10)).is_none(),
            "same tail, different token"
        );
    }

    #[test]
    fn entries_expire_by_the_given_monotonic_reading() {
        let cache = TokenCache::new(100);
        cache.insert("t.t.t", verified("ms", "k1", 100), cache.epoch());
        assert!(cache.get(b"t.t.t", t(99)).is_some());
        assert!(cache.get(b"t.t.t", t(100)).is_none());
        assert!(
            cache.get(b"t.t.t", t(50)).is_none(),
            "an expired entry is gone"
        );
    }

    #[test]
    fn logout_removes_every_token_of_the_session() {
        let cache = TokenCache::new(100);
        for (jwt, session) in [("a.a.a", "ms-1"), ("b.b.b", "ms-1"), ("c.c.c", "ms-2")] {
            cache.insert(jwt, verified(session, "k1", 100), cache.epoch());
        }
        cache.remove_session("ms-1");
        assert!(cache.get(b"a.a.a", t(1)).is_none() && cache.get(b"b.b.b", t(1)).is_none());
        assert!(
            matches!(cache.get(b"c.c.c", t(1)), Some(Lookup::Unchecked(_))),
            "other sessions' tokens stay, to be checked once after the logout"
        );
    }

    /// The session id of a [`Lookup::Checked`] hit.
    fn checked(cache: &TokenCache, jwt: &[u8], now: u64) -> Option<String> {
        match cache.get(jwt, t(now))? {
            Lookup::Checked(Caller::Member(m)) => Some(m.member_session_id().to_owned()),
            Lookup::Checked(other) => panic!("not a member: {other:?}"),
            Lookup::Unchecked(_) => panic!("an entry checked in this epoch"),
        }
    }

    #[test]
    fn an_entry_checked_before_a_logout_is_checked_again_once() {
        let cache = TokenCache::new(100);
        // A verification reads the epoch, finds the session not denylisted...
        let before = cache.epoch();
        // ... a logout of another session runs (or of this one, racing) ...
        cache.remove_session("ms-other");
        // ... and the entry is inserted afterwards, with the epoch before the logout.
        cache.insert("t.t.t", verified("ms", "k1", 100), before);
        let Some(Lookup::Unchecked(entry)) = cache.get(b"t.t.t", t(1)) else {
            panic!("an entry checked before the last logout must be checked again");
        };
        let Caller::Member(member) = &entry.verified().caller else {
            panic!("a member");
        };
        assert_eq!(member.member_session_id(), "ms");
        let now = cache.epoch();
        cache.mark_checked(b"t.t.t", entry, now);
        assert_eq!(checked(&cache, b"t.t.t", 1).as_deref(), Some("ms"));
    }

    #[test]
    fn marking_a_purged_entry_checked_does_not_bring_it_back() {
        let cache = TokenCache::new(100);
        cache.insert("t.t.t", verified("ms", "k1", 100), cache.epoch());
        cache.remove_session("ms-other");
        let Some(Lookup::Unchecked(entry)) = cache.get(b"t.t.t", t(1)) else {
            panic!("unchecked after a logout");
        };
        let epoch = cache.epoch();
        cache.remove_session("ms");
        cache.mark_checked(b"t.t.t", entry, epoch);
        assert!(cache.get(b"t.t.t", t(1)).is_none());
    }

    /// A key retired from the key set takes its tokens with it; the others are checked
    /// once (a verification with the old keys may have raced the retirement).
    #[test]
    fn a_retired_key_removes_every_token_it_verified() {
        let cache = TokenCache::new(100);
        cache.insert("a.a.a", verified("ms-1", "old", 100), cache.epoch());
        cache.insert("b.b.b", verified("ms-2", "new", 100), cache.epoch());
        let before = cache.epoch();
        cache.remove_keys(&[kid("old")]);
        assert!(cache.get(b"a.a.a", t(1)).is_none());
        let Some(Lookup::Unchecked(entry)) = cache.get(b"b.b.b", t(1)) else {
            panic!("a token of another key is checked again once");
        };
        assert_eq!(&*entry.verified().kid, "new");
        // Inserted by a verification that read the epoch before the retirement.
        cache.insert("c.c.c", verified("ms-3", "old", 100), before);
        assert!(matches!(
            cache.get(b"c.c.c", t(1)),
            Some(Lookup::Unchecked(_))
        ));
    }

    #[test]
    fn size_is_bounded() {
        let cache = TokenCache::new(50);
        for i in 0..1_000 {
            cache.insert(&format!("h.p.{i:0>64}"), verified("ms", "k1", 100), 0);
        }
        assert!(cache.len() <= 50, "{}", cache.len());
    }
}
