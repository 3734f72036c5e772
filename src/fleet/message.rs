//! The fleet's data in Redis, as pure functions: key names, the message a revocation
//! travels as, and how a loaded entry is read back. Nothing here does I/O.
//!
//! Per project, under a configurable prefix, with the project id as the hash tag so
//! that both live in one slot of a Redis Cluster:
//!
//! * `<prefix>{<project_id>}:revoked`: a sorted set of revoked `member_session_id`s,
//!   each scored by the time (unix milliseconds) until which it must be refused;
//!   trimmed by score.
//! * `<prefix>{<project_id>}:revocations`: the pub/sub channel carrying each
//!   revocation as it happens, as `v1 <until_ms> <member_session_id>`.

use std::time::{Duration, SystemTime};

/// The longest `member_session_id` accepted from Redis (Stytch's are about 60
/// characters).
const MAX_SESSION_ID_LEN: usize = 256;

/// The two names of one project's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    pub(crate) revoked: String,
    pub(crate) channel: String,
}

impl Keys {
    /// The names under `prefix` for `project_id`.
    pub(crate) fn new(prefix: &str, project_id: &str) -> Self {
        Self {
            revoked: format!("{prefix}{{{project_id}}}:revoked"),
            channel: format!("{prefix}{{{project_id}}}:revocations"),
        }
    }
}

/// One revocation, as published and loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Revocation {
    pub(crate) member_session_id: String,
    /// Unix milliseconds until which the session's JWTs must be refused.
    pub(crate) until_ms: u64,
}

impl Revocation {
    /// The time until which the session must be refused.
    pub(crate) fn until(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(self.until_ms)
    }

    /// The pub/sub message.
    pub(crate) fn message(&self) -> String {
        format!("v1 {} {}", self.until_ms, self.member_session_id)
    }

    /// A pub/sub message, if it is one of ours and well formed.
    pub(crate) fn parse_message(payload: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(payload).ok()?;
        let (until, id) = text.strip_prefix("v1 ")?.split_once(' ')?;
        let until_ms = until.parse::<u64>().ok()?;
        Self::new(id.as_bytes(), until_ms)
    }

    /// A sorted-set member and its score, if well formed: a whole, non-negative
    /// score (milliseconds are exact in a double until the year 285,000).
    pub(crate) fn parse_entry(member: &[u8], score: f64) -> Option<Self> {
        let whole = score.is_finite() && score >= 0.0 && score.fract() == 0.0;
        // In range: the cast below is exact.
        (whole && score < 9_007_199_254_740_992.0)
            .then_some(())
            .and_then(|()| Self::new(member, score as u64))
    }

    /// A revocation of the session `member`, if it is a session id: visible ASCII
    /// without spaces, at most 256 bytes.
    fn new(member: &[u8], until_ms: u64) -> Option<Self> {
        let id = std::str::from_utf8(member).ok()?;
        let valid = !id.is_empty()
            && id.len() <= MAX_SESSION_ID_LEN
            && id.bytes().all(|b| b.is_ascii_graphic());
        valid.then(|| Self {
            member_session_id: id.to_owned(),
            until_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = Keys::new("axum-stytch:", "project-test-1");
        assert_eq!(keys.revoked, "axum-stytch:{project-test-1}:revoked");
        assert_eq!(keys.channel, "axum-stytch:{project-test-1}:revocations");
    }

    #[test]
    fn a_message_round_trips() {
        let r = Revocation {
            member_session_id: "member-session-test-1".into(),
            until_ms: 1_767_225_600_123,
        };
        assert_eq!(r.message(), "v1 1767225600123 member-session-test-1");
        assert_eq!(Revocation::parse_message(r.message().as_bytes()), Some(r));
    }

    /// Junk on the channel or in the set is never a revocation of something else, and
    /// never a panic.
    #[test]
    fn malformed_input_is_refused() {
        for junk in [
            &b""[..],
            b"v1",
            b"v1 ",
            b"v1 12",
            b"v1 12 ",
            b"v2 12 ms-1",
            b"v1 -12 ms-1",
            b"v1 1.5 ms-1",
            b"v1 99999999999999999999999 ms-1",
            b"v1 12 ms 1",
            b"v1 12 ms-\xff",
            b"\xff\xfe",
            b"12 ms-1",
        ] {
            assert_eq!(Revocation::parse_message(junk), None, "{junk:?}");
        }
        let long = "x".repeat(MAX_SESSION_ID_LEN + 1);
        for (member, score) in [
            (&b"ms-1"[..], -1.0),
            (b"ms-1", f64::NAN),
            (b"ms-1", f64::INFINITY),
            (b"ms-1", 1.5),
            (b"", 1.0),
            (b"ms 1", 1.0),
            (long.as_bytes(), 1.0),
        ] {
            assert_eq!(
                Revocation::parse_entry(member, score),
                None,
                "{member:?} {score}"
            );
        }
        assert!(Revocation::parse_entry(b"ms-1", 1_767_225_600_123.0).is_some());
    }
}
