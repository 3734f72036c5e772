//! Local verification of a session JWT: structure, RS256 signature, claims.
//!
//! Pure: the key and the time are passed in. `jsonwebtoken` parses the header; the
//! signature is checked with aws-lc-rs against a key parsed once per JWKS fetch
//! (jsonwebtoken 11 re-parses the RSA key on every call); the claims are checked here
//! because their rules (issuer set, age limit, stale-but-signed fallback, injected
//! clock) are Stytch's, not generic JWT ones.
//!
//! The payload and the signature (about 1.5 KB of base64url per Stytch JWT) are decoded
//! with `base64-simd`, which accepts exactly what the `base64` crate's strict
//! `URL_SAFE_NO_PAD` does (no padding, no other alphabet, canonical trailing bits: see
//! the tests) at about a quarter of its cost.

use std::sync::Arc;

use aws_lc_rs::signature::ParsedPublicKey;
use base64_simd::{Out, URL_SAFE_NO_PAD as BASE64URL};
use jsonwebtoken::Algorithm;

use super::keys::MAX_KID_LEN;
use super::known_headers::KnownHeaders;
use super::rejected::Rejected;

/// No Stytch session JWT comes near this; anything longer is rejected unparsed.
pub(crate) const MAX_TOKEN_LEN: usize = 8 * 1024;
/// An RSA-8192 signature is 1,024 bytes.
const MAX_SIGNATURE_LEN: usize = 1024;

/// A JWT split into its parts, header decoded, signature not yet checked. Its `Debug`
/// shows the `kid` only: the token is a credential.
pub(crate) struct Token<'a> {
    pub(crate) kid: Arc<str>,
    header: &'a str,
    /// The header was parsed here, not found among the [`KnownHeaders`].
    header_is_new: bool,
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
}

impl<'a> Token<'a> {
    /// Splits `token` and parses its header, or takes the header's `kid` from `known`
    /// when a validly signed token with the same header bytes was seen before.
    pub(crate) fn parse(token: &'a str, known: Option<&KnownHeaders>) -> Result<Self, Rejected> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Rejected::Malformed);
        }
        let mut dots = memchr::memchr_iter(b'.', token.as_bytes());
        let (Some(first), Some(second), None) = (dots.next(), dots.next(), dots.next()) else {
            return Err(Rejected::Malformed);
        };
        let (header, payload, signature) = (
            &token[..first],
            &token[first + 1..second],
            &token[second + 1..],
        );
        if header.is_empty() || payload.is_empty() || signature.is_empty() {
            return Err(Rejected::Malformed);
        }
        let (kid, header_is_new) = match known.and_then(|known| known.kid_of(header)) {
            Some(kid) => (kid, false),
            None => (parse_header(header)?, true),
        };
        Ok(Self {
            kid,
            header,
            header_is_new,
            signing_input: &token[..second],
            payload,
            signature,
        })
    }

    /// Adds this token's header to `known`. Call only once its signature has verified.
    pub(crate) fn remember_header(&self, known: &KnownHeaders) {
        if self.header_is_new {
            known.remember(self.header, &self.kid);
        }
    }

    /// Checks the RS256 signature with `key`.
    pub(crate) fn verify_signature(&self, key: &ParsedPublicKey) -> Result<(), Rejected> {
        let encoded = self.signature.as_bytes();
        let len = BASE64URL
            .decoded_length(encoded)
            .map_err(|_| Rejected::BadSignature)?;
        if len > MAX_SIGNATURE_LEN {
            return Err(Rejected::BadSignature);
        }
        let mut signature = [0u8; MAX_SIGNATURE_LEN];
        let signature = BASE64URL
            .decode(encoded, Out::from_slice(&mut signature[..len]))
            .map_err(|_| Rejected::BadSignature)?;
        key.verify_sig(self.signing_input.as_bytes(), signature)
            .map_err(|_| Rejected::BadSignature)
    }

    /// Decodes the payload as the claims of a kind. Only meaningful after
    /// [`Token::verify_signature`].
    pub(crate) fn claims<C: serde::de::DeserializeOwned>(&self) -> Result<C, Rejected> {
        let bytes = BASE64URL
            .decode_to_vec(self.payload)
            .map_err(|_| Rejected::Malformed)?;
        // Checked once here, so serde_json need not check every string on its own.
        let json = std::str::from_utf8(&bytes).map_err(|_| Rejected::Malformed)?;
        serde_json::from_str(json).map_err(|_| Rejected::Malformed)
    }
}

impl std::fmt::Debug for Token<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// No Stytch JWT header comes near this (`alg`, `kid`, `typ`: about 100 characters).
const MAX_HEADER_LEN: usize = 1024;

/// The `kid` of an RS256 header segment, checked: `alg` RS256, `typ` JWT if present,
/// a `kid` of acceptable length.
fn parse_header(header: &str) -> Result<Arc<str>, Rejected> {
    let parsed = decode_header(header)?;
    if parsed.alg != Algorithm::RS256 {
        return Err(Rejected::UnsupportedAlgorithm);
    }
    if parsed
        .typ
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("JWT"))
    {
        return Err(Rejected::Malformed);
    }
    parsed
        .kid
        .filter(|k| !k.is_empty() && k.len() <= MAX_KID_LEN)
        .map(Arc::from)
        .ok_or(Rejected::MissingKid)
}

/// The JOSE header of a JWT whose header segment is `header`, parsed by `jsonwebtoken`.
///
/// `jsonwebtoken::decode_header` takes a whole token and finds the header by scanning
/// it byte by byte from the end (about 1.5 KB for a Stytch JWT); it is given
/// `<header>..` instead, which it splits the same way.
fn decode_header(header: &str) -> Result<jsonwebtoken::Header, Rejected> {
    let mut buf = [0u8; MAX_HEADER_LEN + 2];
    let len = header.len();
    if len > MAX_HEADER_LEN {
        return Err(Rejected::Malformed);
    }
    buf[..len].copy_from_slice(header.as_bytes());
    buf[len..len + 2].copy_from_slice(b"..");
    jsonwebtoken::decode_header(&buf[..len + 2]).map_err(|_| Rejected::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::registered::{ClaimRules, Standing};
    use crate::jwt::session::SessionClaims;
    use crate::jwt::test_keys::{TestKey, claims_json};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use std::time::Duration;
    use std::time::SystemTime;

    proptest::proptest! {
        /// The hot path's decoder accepts and rejects exactly what the `base64` crate's
        /// strict decoder does, with the same bytes.
        #[test]
        fn base64_simd_agrees_with_the_base64_crate(
            input in "[A-Za-z0-9_=+/. -]{0,80}|[A-Za-z0-9_-]{0,400}"
        ) {
            let strict = URL_SAFE_NO_PAD.decode(&input).ok();
            let simd = BASE64URL.decode_to_vec(&input).ok();
            proptest::prop_assert_eq!(strict, simd);
        }

        #[test]
        fn canonical_encodings_round_trip(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let encoded = URL_SAFE_NO_PAD.encode(&bytes);
            proptest::prop_assert_eq!(BASE64URL.decode_to_vec(&encoded).ok(), Some(bytes));
        }
    }

    const PID: &str = "project-test-1";

    fn rules() -> ClaimRules {
        ClaimRules {
            project_id: PID.into(),
            issuers: vec![
                format!("stytch.com/{PID}"),
                "https://auth.example.com".into(),
            ],
            leeway_secs: 5,
            max_token_age_secs: 300,
            machine_max_age_secs: 3600,
        }
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    const IAT: u64 = 1_767_225_600;

    fn standing(
        patch: impl FnOnce(&mut serde_json::Value),
        now: u64,
    ) -> Result<Standing, Rejected> {
        let mut claims = claims_json(PID, IAT);
        patch(&mut claims);
        let key = TestKey::get();
        let jwt = key.sign(&claims);
        let token = Token::parse(&jwt, None)?;
        token.verify_signature(key.public())?;
        rules().check(&token.claims::<SessionClaims>()?, at(now))
    }

    #[test]
    fn fresh_token_is_valid_until_the_earlier_deadline() {
        match standing(|_| {}, IAT + 10).unwrap() {
            Standing::Fresh { valid_until } => assert_eq!(valid_until, IAT + 300),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn claim_table() {
        use serde_json::json;
        type Patch = fn(&mut serde_json::Value);
        let cases: &[(&str, Patch, u64, Result<&str, Rejected>)] = &[
            ("default issuer", |_| {}, IAT, Ok("fresh")),
            (
                "custom-domain issuer",
                |c| c["iss"] = json!("https://auth.example.com"),
                IAT,
                Ok("fresh"),
            ),
            (
                "wrong issuer",
                |c| c["iss"] = json!("stytch.com/project-test-2"),
                IAT,
                Err(Rejected::ForeignIssuer),
            ),
            (
                "environment url is not an issuer",
                |c| c["iss"] = json!("https://test.stytch.com"),
                IAT,
                Err(Rejected::ForeignIssuer),
            ),
            (
                "other audience",
                |c| c["aud"] = json!(["project-test-2"]),
                IAT,
                Err(Rejected::InvalidClaims),
            ),
            (
                "audience as string",
                |c| c["aud"] = json!(PID),
                IAT,
                Ok("fresh"),
            ),
            (
                "audience among others",
                |c| c["aud"] = json!(["x", PID]),
                IAT,
                Ok("fresh"),
            ),
            (
                "empty sub",
                |c| c["sub"] = json!(""),
                IAT,
                Err(Rejected::InvalidClaims),
            ),
            (
                "missing session claim",
                |c| {
                    c.as_object_mut()
                        .unwrap()
                        .remove(crate::jwt::session::SESSION_CLAIM);
                },
                IAT,
                Err(Rejected::Malformed),
            ),
            (
                "missing org claim",
                |c| {
                    c.as_object_mut()
                        .unwrap()
                        .remove(crate::jwt::session::ORGANIZATION_CLAIM);
                },
                IAT,
                Err(Rejected::Malformed),
            ),
            (
                "roles not strings",
                |c| c[crate::jwt::session::SESSION_CLAIM]["roles"] = json!([1, 2]),
                IAT,
                Err(Rejected::Malformed),
            ),
            (
                "exp as float",
                |c| c["exp"] = json!(1.5e9),
                IAT,
                Err(Rejected::Malformed),
            ),
            (
                "exp as string",
                |c| c["exp"] = json!("1767225900"),
                IAT,
                Err(Rejected::Malformed),
            ),
            (
                "negative iat",
                |c| c["iat"] = json!(-1),
                IAT,
                Err(Rejected::Malformed),
            ),
            (
                "exp u64::MAX",
                |c| c["exp"] = json!(u64::MAX),
                IAT,
                Ok("fresh"),
            ),
            (
                "iat u64::MAX",
                |c| {
                    c["iat"] = json!(u64::MAX);
                    c["nbf"] = json!(u64::MAX);
                },
                IAT,
                Ok("ahead"),
            ),
            (
                "future nbf",
                |c| c["nbf"] = json!(IAT + 60),
                IAT,
                Ok("ahead"),
            ),
            (
                "nbf within leeway",
                |c| c["nbf"] = json!(IAT + 5),
                IAT,
                Ok("fresh"),
            ),
            (
                "future iat",
                |c| c["iat"] = json!(IAT + 60),
                IAT,
                Ok("ahead"),
            ),
            ("expired within leeway", |_| {}, IAT + 299, Ok("fresh")),
            ("too old", |_| {}, IAT + 300, Ok("stale")),
            (
                "iat ahead within leeway",
                |c| {
                    c["iat"] = json!(IAT + 3);
                    c["nbf"] = json!(IAT + 3);
                },
                IAT,
                Ok("fresh"),
            ),
            (
                "expired",
                |c| c["exp"] = json!(IAT + 60),
                IAT + 66,
                Ok("stale"),
            ),
            (
                "a second before exp + leeway",
                |c| c["exp"] = json!(IAT + 60),
                IAT + 64,
                Ok("fresh"),
            ),
            (
                "at exp + leeway",
                |c| c["exp"] = json!(IAT + 60),
                IAT + 65,
                Ok("stale"),
            ),
            (
                "session over",
                |c| {
                    c[crate::jwt::session::SESSION_CLAIM]["expires_at"] =
                        json!("2026-01-01T00:00:01Z")
                },
                IAT + 2,
                Ok("stale"),
            ),
        ];
        for (name, patch, now, expected) in cases {
            let got = standing(*patch, *now).map(|s| match s {
                Standing::Fresh { .. } => "fresh",
                Standing::Stale {
                    issued_ahead: false,
                } => "stale",
                Standing::Stale { issued_ahead: true } => "ahead",
            });
            assert_eq!(got, *expected, "{name}");
        }
    }

    #[test]
    fn zero_max_age_makes_every_token_stale() {
        let key = TestKey::get();
        let jwt = key.sign(&claims_json(PID, IAT));
        let token = Token::parse(&jwt, None).unwrap();
        let rules = ClaimRules {
            max_token_age_secs: 0,
            ..rules()
        };
        assert!(matches!(
            rules.check(&token.claims::<SessionClaims>().unwrap(), at(IAT)),
            Ok(Standing::Stale { .. })
        ));
        // Even with Stytch's clock a little ahead of ours.
        assert!(matches!(
            rules.check(&token.claims::<SessionClaims>().unwrap(), at(IAT - 2)),
            Ok(Standing::Stale { .. })
        ));
    }

    #[test]
    fn iat_ahead_of_our_clock_does_not_extend_trust() {
        let mut claims = claims_json(PID, IAT + 3);
        claims["exp"] = serde_json::json!(IAT + 10_000);
        let key = TestKey::get();
        let jwt = key.sign(&claims);
        let token = Token::parse(&jwt, None).unwrap();
        match rules()
            .check(&token.claims::<SessionClaims>().unwrap(), at(IAT))
            .unwrap()
        {
            Standing::Fresh { valid_until } => assert_eq!(valid_until, IAT + 300),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn trust_ends_with_the_session() {
        let mut claims = claims_json(PID, IAT);
        claims[crate::jwt::session::SESSION_CLAIM]["expires_at"] =
            serde_json::json!("2026-01-01T00:02:00Z");
        let key = TestKey::get();
        let jwt = key.sign(&claims);
        let token = Token::parse(&jwt, None).unwrap();
        match rules()
            .check(&token.claims::<SessionClaims>().unwrap(), at(IAT + 10))
            .unwrap()
        {
            Standing::Fresh { valid_until } => assert_eq!(valid_until, IAT + 120),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn structural_table() {
        let key = TestKey::get();
        let good = key.sign(&claims_json(PID, IAT));
        let (h, rest) = good.split_once('.').unwrap();
        let (p, s) = rest.split_once('.').unwrap();
        let enc = |v: &str| URL_SAFE_NO_PAD.encode(v);
        let cases: Vec<(String, Rejected)> = vec![
            (String::new(), Rejected::Malformed),
            ("a.b".into(), Rejected::Malformed),
            (format!("{good}.extra"), Rejected::Malformed),
            (format!("{h}..{s}"), Rejected::Malformed),
            (format!("{h}={p}.{s}"), Rejected::Malformed),
            (
                format!("{}.{p}.{s}", enc(r#"{"alg":"none","kid":"k"}"#)),
                Rejected::Malformed,
            ),
            (
                format!("{}.{p}.{s}", enc(r#"{"alg":"HS256","kid":"k"}"#)),
                Rejected::UnsupportedAlgorithm,
            ),
            (
                format!("{}.{p}.{s}", enc(r#"{"alg":"RS384","kid":"k"}"#)),
                Rejected::UnsupportedAlgorithm,
            ),
            (
                format!("{}.{p}.{s}", enc(r#"{"alg":"PS256","kid":"k"}"#)),
                Rejected::UnsupportedAlgorithm,
            ),
            (
                format!("{}.{p}.{s}", enc(r#"{"alg":"ES256","kid":"k"}"#)),
                Rejected::UnsupportedAlgorithm,
            ),
            (
                format!("{}.{p}.{s}", enc(r#"{"alg":"RS256"}"#)),
                Rejected::MissingKid,
            ),
            (
                format!("{}.{p}.{s}", enc(r#"{"alg":"RS256","kid":""}"#)),
                Rejected::MissingKid,
            ),
            (
                format!("{}.{p}.{s}", enc(r#"{"alg":"RS256","kid":7}"#)),
                Rejected::Malformed,
            ),
            (
                format!(
                    "{}.{p}.{s}",
                    enc(&format!(
                        r#"{{"alg":"RS256","kid":"{}"}}"#,
                        "k".repeat(10_000)
                    ))
                ),
                Rejected::Malformed,
            ),
            (
                format!(
                    "{}.{p}.{s}",
                    enc(&format!(r#"{{"alg":"RS256","kid":"{}"}}"#, "k".repeat(200)))
                ),
                Rejected::MissingKid,
            ),
            (
                format!(
                    "{}.{p}.{s}",
                    enc(r#"{"alg":"RS256","kid":"k","typ":"at+jwt"}"#)
                ),
                Rejected::Malformed,
            ),
            (format!("{}.{p}.{s}", enc("[1]")), Rejected::Malformed),
            ("x".repeat(MAX_TOKEN_LEN + 1), Rejected::Malformed),
        ];
        for (token, expected) in cases {
            let short: String = token.chars().take(60).collect();
            assert_eq!(Token::parse(&token, None).err(), Some(expected), "{short}");
        }
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let key = TestKey::get();
        let good = key.sign(&claims_json(PID, IAT));
        let known = KnownHeaders::new();
        let token = Token::parse(&good, Some(&known)).unwrap();
        assert_eq!(token.verify_signature(key.public()), Ok(()));
        token.remember_header(&known);
        let (h, rest) = good.split_once('.').unwrap();
        let (p, s) = rest.split_once('.').unwrap();
        let mut other = claims_json(PID, IAT);
        other["sub"] = "member-test-evil".into();
        let evil_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap());
        let flip = |seg: &str| {
            let mut b = seg.as_bytes().to_vec();
            let i = b.len() / 2;
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            String::from_utf8(b).unwrap()
        };
        for tampered in [
            format!("{h}.{evil_payload}.{s}"),
            format!("{h}.{}.{s}", flip(p)),
            format!("{h}.{p}.{}", flip(s)),
            format!("{h}.{p}.{}", &s[..s.len() - 4]),
            format!("{h}.{p}.{s}=="),
            format!(
                "{h}.{p}.{}",
                s.replace(|c: char| c.is_ascii_alphabetic(), "+")
            ),
        ] {
            // A header known from a verified token skips parsing, not the signature.
            for known in [None, Some(&known)] {
                let token = Token::parse(&tampered, known).unwrap();
                assert_eq!(token.header_is_new, known.is_none());
                assert_eq!(
                    token.verify_signature(key.public()),
                    Err(Rejected::BadSignature)
                );
            }
        }
        assert_eq!(&*token.kid, key.kid());
    }

    #[test]
    fn debug_shows_the_kid_only() {
        let key = TestKey::get();
        let jwt = key.sign(&claims_json(PID, IAT));
        let shown = format!("{:?}", Token::parse(&jwt, None).unwrap());
        assert!(shown.contains(key.kid()), "{shown}");
        for segment in jwt.split('.') {
            assert!(!shown.contains(segment), "{shown}");
        }
    }

    #[test]
    fn only_headers_of_verified_tokens_are_remembered() {
        let key = TestKey::get();
        let known = KnownHeaders::new();
        let forged = TestKey::other().sign(&claims_json(PID, IAT));
        let token = Token::parse(&forged, Some(&known)).unwrap();
        assert!(token.verify_signature(key.public()).is_err());
        // The caller remembers only after a successful check; the header is still new.
        let good = key.sign(&claims_json(PID, IAT));
        let first = Token::parse(&good, Some(&known)).unwrap();
        assert!(first.header_is_new);
        first.verify_signature(key.public()).unwrap();
        first.remember_header(&known);
        let again = Token::parse(&good, Some(&known)).unwrap();
        assert!(!again.header_is_new);
        assert_eq!(again.kid, first.kid);
        // Same fields, other bytes (key order): parsed, not matched.
        let (_, rest) = good.split_once('.').unwrap();
        let reordered = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"kid":"{}","alg":"RS256","typ":"JWT"}}"#,
            key.kid()
        ));
        let reordered = format!("{reordered}.{rest}");
        let other = Token::parse(&reordered, Some(&known)).unwrap();
        assert!(other.header_is_new);
        assert_eq!(&*other.kid, key.kid());
        // A header that fails its checks is refused whatever is known.
        let hs256 = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"HS256","kid":"{}"}}"#, key.kid()));
        assert_eq!(
            Token::parse(&format!("{hs256}.{rest}"), Some(&known)).err(),
            Some(Rejected::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn other_key_does_not_verify() {
        let key = TestKey::get();
        let other = TestKey::other();
        let jwt = other.sign(&claims_json(PID, IAT));
        let token = Token::parse(&jwt, None).unwrap();
        assert_eq!(
            token.verify_signature(key.public()),
            Err(Rejected::BadSignature)
        );
    }
}
