//! Stytch's signing keys, parsed once per JWKS fetch.

use std::collections::HashMap;

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64_simd::URL_SAFE_NO_PAD;

use crate::client::wire::JwksResponse;

/// At most this many keys are kept from one JWKS (Stytch serves one or two).
const MAX_KEYS: usize = 16;
/// A `kid` longer than this cannot be one of Stytch's.
pub(crate) const MAX_KID_LEN: usize = 128;

/// The usable RS256 keys of one JWKS fetch, by `kid`.
pub(crate) struct KeySet {
    keys: HashMap<String, ParsedPublicKey>,
}

impl KeySet {
    /// Keeps every RSA key meant for RS256 signatures; skips (and counts) the others.
    pub(crate) fn from_jwks(jwks: &JwksResponse) -> (Self, usize) {
        let mut keys = HashMap::new();
        let mut skipped = 0;
        for jwk in &jwks.keys {
            match parse_jwk(jwk) {
                Some((kid, key)) if keys.len() < MAX_KEYS => {
                    keys.insert(kid, key);
                }
                _ => skipped += 1,
            }
        }
        (Self { keys }, skipped)
    }

    pub(crate) fn get(&self, kid: &str) -> Option<&ParsedPublicKey> {
        self.keys.get(kid)
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The `kid`s of `self` that `newer` no longer holds: keys Stytch retired.
    pub(crate) fn retired_in(&self, newer: &KeySet) -> Vec<std::sync::Arc<str>> {
        self.keys
            .keys()
            .filter(|kid| newer.get(kid).is_none())
            .map(|kid| std::sync::Arc::from(kid.as_str()))
            .collect()
    }
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn parse_jwk(jwk: &crate::client::wire::Jwk) -> Option<(String, ParsedPublicKey)> {
    if jwk.kty.as_deref() != Some("RSA") {
        return None;
    }
    if jwk.alg.as_deref().is_some_and(|alg| alg != "RS256")
        || jwk.use_.as_deref().is_some_and(|u| u != "sig")
    {
        return None;
    }
    let kid = jwk
        .kid
        .as_ref()
        .filter(|k| !k.is_empty() && k.len() <= MAX_KID_LEN)?;
    let n = URL_SAFE_NO_PAD.decode_to_vec(jwk.n.as_deref()?).ok()?;
    let e = URL_SAFE_NO_PAD.decode_to_vec(jwk.e.as_deref()?).ok()?;
    let (n, e) = (strip_zeros(&n), strip_zeros(&e));
    // aws-lc-rs checks the modulus size only when verifying: a set of undersized keys
    // must count as unusable here, so that it never replaces good keys.
    let bits = (n.len() * 8).saturating_sub(n.first().map_or(0, |b| b.leading_zeros() as usize));
    if !(2048..=8192).contains(&bits) {
        return None;
    }
    let key = RsaPublicKeyComponents { n, e }
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .ok()?;
    Some((kid.clone(), key))
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}
