//! [`KnownHeaders`]: the JOSE headers of tokens whose signature verified, by their
//! encoded bytes.
//!
//! Stytch signs every session JWT of a key with the same header (`alg`, `kid`, `typ`),
//! so the same few dozen bytes begin thousands of distinct tokens. Parsing that header
//! (base64, JSON, the `alg`/`typ`/`kid` checks) is a pure function of its bytes: a
//! header seen on a validly signed token is parsed once, and later tokens that begin
//! with the same bytes reuse its `kid`. Only headers of tokens that passed the
//! signature check are remembered, so forged tokens cannot fill the list; it holds at
//! most [`MAX_KNOWN`] entries, and when full the oldest goes first (key rotation).

use std::sync::Arc;

use arc_swap::ArcSwap;

/// Stytch serves one or two keys at a time; this leaves room for a rotation or two.
pub(crate) const MAX_KNOWN: usize = 8;

/// Headers already parsed and accepted, newest last.
pub(crate) struct KnownHeaders {
    seen: ArcSwap<Vec<Known>>,
}

#[derive(Clone)]
struct Known {
    /// The base64url header segment, exactly as it appeared in the token.
    segment: Box<str>,
    kid: Arc<str>,
}

impl KnownHeaders {
    pub(crate) fn new() -> Self {
        Self {
            seen: ArcSwap::from_pointee(Vec::new()),
        }
    }

    /// The `kid` of `segment` if a token with exactly this header verified before.
    pub(crate) fn kid_of(&self, segment: &str) -> Option<Arc<str>> {
        self.seen
            .load()
            .iter()
            .find(|known| *known.segment == *segment)
            .map(|known| known.kid.clone())
    }

    /// Remembers that `segment` parses to `kid`. Call only once the token's signature
    /// has verified.
    pub(crate) fn remember(&self, segment: &str, kid: &Arc<str>) {
        self.seen.rcu(|seen| {
            if seen.iter().any(|known| *known.segment == *segment) {
                return Arc::clone(seen);
            }
            let skip = (seen.len() + 1).saturating_sub(MAX_KNOWN);
            let mut next: Vec<Known> = seen.iter().skip(skip).cloned().collect();
            next.push(Known {
                segment: segment.into(),
                kid: kid.clone(),
            });
            Arc::new(next)
        });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.load().len()
    }
}

impl std::fmt::Debug for KnownHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownHeaders")
            .field("len", &self.seen.load().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_exact_segments_only() {
        let known = KnownHeaders::new();
        assert_eq!(known.kid_of("eyJh"), None);
        known.remember("eyJh", &Arc::from("k1"));
        known.remember("eyJh", &Arc::from("k1"));
        assert_eq!(known.len(), 1, "remembered once");
        assert_eq!(known.kid_of("eyJh").as_deref(), Some("k1"));
        for other in ["eyJ", "eyJhb", "EYJH", ""] {
            assert_eq!(known.kid_of(other), None, "{other:?}");
        }
    }

    #[test]
    fn the_oldest_goes_first_when_full() {
        let known = KnownHeaders::new();
        for i in 0..MAX_KNOWN + 2 {
            known.remember(&format!("h{i}"), &Arc::from(format!("k{i}")));
        }
        assert_eq!(known.len(), MAX_KNOWN);
        assert_eq!(known.kid_of("h0"), None);
        assert_eq!(known.kid_of("h1"), None);
        assert_eq!(known.kid_of("h2").as_deref(), Some("k2"));
        let last = MAX_KNOWN + 1;
        assert_eq!(
            known.kid_of(&format!("h{last}")).as_deref(),
            Some(format!("k{last}").as_str())
        );
    }
}
