//! Hostile credentials: forged, tampered, malformed and oversized session JWTs and
//! cookies must be refused with 401 and the right reason, without a single call to
//! Stytch's `sessions/authenticate`, without extra JWKS fetches (beyond one per
//! cooldown for unknown kids), and without panicking. Also: disagreeing cookies,
//! and that no credential ever reaches the logs.

mod common;

use std::time::{Duration, SystemTime};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::hmac;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PSS_SHA256};
use axum::body::Body;
use axum_stytch::testing::{Endpoint, StytchEmulator};
use axum_stytch::{Clock as _, Reason};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use common::*;
use http::header::COOKIE;
use http::{HeaderValue, Request, StatusCode};
use serde_json::{Value, json};

// ----------------------------------------------------------------------------------
// Building hostile JWTs

fn b64(data: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

fn decode_segment(segment: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(segment).unwrap()
}

/// The parts of a real session JWT, and the emulator (which signs with its real key)
/// so that a test can change exactly one thing and keep a valid signature. The key
/// itself is here for what the emulator does not sign: other algorithms, padded
/// segments, HMAC keyed with the public key.
struct Forge {
    emu: StytchEmulator,
    emu_key: KeyPair,
    attacker_key: KeyPair,
    kid: String,
    /// The valid JWT and its three segments.
    jwt: String,
    h: String,
    p: String,
    s: String,
    claims: Value,
    now: u64,
}

impl Forge {
    fn new(emu: &StytchEmulator, jwt: &str) -> Self {
        let mut parts = jwt.split('.').map(str::to_owned);
        let (h, p, s) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        Self {
            emu: emu.clone(),
            emu_key: KeyPair::from_pkcs8(&emu.signing_key_pkcs8_der()).unwrap(),
            attacker_key: KeyPair::generate(KeySize::Rsa2048).unwrap(),
            kid: emu.signing_kid(),
            jwt: jwt.to_owned(),
            h,
            p,
            s,
            claims: claims_of(jwt),
            now: emu
                .clock()
                .now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        }
    }

    fn header(&self) -> String {
        json!({"alg": "RS256", "kid": self.kid, "typ": "JWT"}).to_string()
    }

    fn payload(&self) -> String {
        self.claims.to_string()
    }

    /// A JWT of these header and payload texts, RS256-signed with the real key.
    fn signed(&self, header: &str, payload: &str) -> String {
        self.emu.sign_raw(header, payload)
    }

    /// Real header, this payload text, real key.
    fn signed_payload(&self, payload: &str) -> String {
        self.signed(&self.header(), payload)
    }

    /// Real header, the valid claims changed by `patch`, real key.
    fn signed_claims(&self, patch: impl FnOnce(&mut Value)) -> String {
        let mut claims = self.claims.clone();
        patch(&mut claims);
        self.signed_payload(&claims.to_string())
    }

    /// Real payload, this header text, real key.
    fn signed_header(&self, header: &str) -> String {
        self.signed(header, &self.payload())
    }

    /// The valid claims as JSON text with `extra` (`"key":value` pairs) inserted
    /// first, e.g. to repeat a key.
    fn payload_with_leading(&self, extra: &str) -> String {
        let text = self.payload();
        format!("{{{extra},{}", &text[1..])
    }

    /// HS256 over the real header (alg switched) and payload, keyed with `secret`.
    fn hs256(&self, secret: &[u8]) -> String {
        let header = json!({"alg": "HS256", "kid": self.kid, "typ": "JWT"}).to_string();
        let input = format!("{}.{}", b64(header), b64(self.payload()));
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
        format!("{input}.{}", b64(tag.as_ref()))
    }

    fn public_spki_der(&self) -> Vec<u8> {
        self.emu_key
            .public_key()
            .as_der()
            .unwrap()
            .as_ref()
            .to_vec()
    }

    fn public_pem(&self) -> String {
        let body = STANDARD.encode(self.public_spki_der());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    fn public_n(&self) -> Vec<u8> {
        self.emu_key
            .public_key()
            .modulus()
            .big_endian_without_leading_zero()
            .to_vec()
    }

    fn public_pkcs1_der(&self) -> Vec<u8> {
        self.emu_key.public_key().as_ref().to_vec()
    }

    /// `text` base64url-encoded WITH padding; `text` is grown with trailing spaces
    /// (insignificant in JSON) until padding is needed.
    fn padded(text: &str) -> String {
        let mut text = text.to_owned();
        while !URL_SAFE.encode(&text).ends_with('=') {
            text.push(' ');
        }
        URL_SAFE.encode(&text)
    }
}

/// `segment` with its character at `i` replaced by another base64url character.
fn flip_at(segment: &str, i: usize) -> String {
    let mut bytes = segment.as_bytes().to_vec();
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

fn flip_middle(segment: &str) -> String {
    flip_at(segment, segment.len() / 2)
}

// ----------------------------------------------------------------------------------
// The table

enum Input {
    /// The value of the `stytch_session_jwt` cookie.
    Jwt(String),
    /// One raw `Cookie` header.
    Header(Vec<u8>),
    /// Several `Cookie` headers.
    Headers(Vec<Vec<u8>>),
}

struct Case {
    name: &'static str,
    input: Input,
    reason: Reason,
    /// A kid the JWKS does not hold: may cost one JWKS fetch per cooldown.
    unknown_kid: bool,
}

fn jwt(name: &'static str, value: String) -> Case {
    Case {
        name,
        input: Input::Jwt(value),
        reason: Reason::InvalidToken,
        unknown_kid: false,
    }
}

fn unknown_kid(name: &'static str, value: String) -> Case {
    Case {
        unknown_kid: true,
        ..jwt(name, value)
    }
}

fn header(name: &'static str, value: impl Into<Vec<u8>>, reason: Reason) -> Case {
    Case {
        name,
        input: Input::Header(value.into()),
        reason,
        unknown_kid: false,
    }
}

fn with_reason(mut case: Case, reason: Reason) -> Case {
    case.reason = reason;
    case
}

fn hostile_cases(f: &Fixture, forge: &Forge, other_project_jwt: String) -> Vec<Case> {
    let (h, p, s) = (&forge.h, &forge.p, &forge.s);
    let good = &forge.jwt;
    let kid = &forge.kid;
    let now = forge.now;
    let session_claim = "https://stytch.com/session";
    let org_claim = "https://stytch.com/organization";

    // Another valid JWT of this project, to splice signatures.
    let other_member = f.emu.create_member(&f.org, "eve@acme.test", &["editor"]);
    let other_jwt = f.emu.create_session(&other_member).session_jwt;
    let other_sig = other_jwt.rsplit('.').next().unwrap().to_owned();

    let mut evil_claims = forge.claims.clone();
    evil_claims["sub"] = json!(other_member);
    let evil_payload = b64(evil_claims.to_string());

    // A 10 KB kid, validly signed.
    let huge_kid_header = json!({"alg": "RS256", "kid": "k".repeat(10_000), "typ": "JWT"});
    // A JWT padded to ~5 KB with a custom claim, validly signed.
    let fat = forge.signed_claims(|c| c["padding"] = json!("x".repeat(3_600)));
    assert!(fat.len() > 4_096 && fat.len() < 8_192, "{}", fat.len());

    let deep = format!("{}{}", "[".repeat(600), "]".repeat(600));
    let attacker_jwk = json!({
        "kty": "RSA",
        "kid": kid,
        "e": b64(forge.attacker_key.public_key().exponent().big_endian_without_leading_zero()),
        "n": b64(forge.attacker_key.public_key().modulus().big_endian_without_leading_zero()),
    });
    let attacker_sign = |header: &Value, claims: &Value| {
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        sign_input(&forge.attacker_key, &RSA_PKCS1_SHA256, &input)
    };

    // Two "id" keys inside the session claim (serde_json::Value cannot hold
    // duplicates, so the JSON text is edited).
    let real_id = format!(r#""id":{}"#, json!(f.session.member_session_id));
    assert!(forge.payload().contains(&real_id));
    let dup_session_id = forge.signed_payload(&forge.payload().replace(
        &real_id,
        &format!(r#""id":"member-session-test-evil",{real_id}"#),
    ));

    let stale = |patch: fn(&mut Value)| {
        forge.signed_claims(|c| {
            c["iat"] = json!(now - 1_000);
            c["nbf"] = json!(now - 1_000);
            c["exp"] = json!(now - 700);
            patch(c);
        })
    };

    vec![
        // --- tampering ------------------------------------------------------------
        jwt(
            "tampered header (extra field, original signature)",
            format!(
                "{}.{p}.{s}",
                b64(json!({"alg": "RS256", "kid": kid, "typ": "JWT", "x": 1}).to_string())
            ),
        ),
        // The first character: flipping one inside the kid could name another
        // (unknown) kid instead, which is the unknown-kid case below.
        jwt(
            "tampered header (flipped char)",
            format!("{}.{p}.{s}", flip_at(h, 0)),
        ),
        jwt(
            "tampered payload (other sub)",
            format!("{h}.{evil_payload}.{s}"),
        ),
        jwt(
            "tampered payload (flipped char)",
            format!("{h}.{}.{s}", flip_middle(p)),
        ),
        jwt(
            "tampered signature (flipped char)",
            format!("{h}.{p}.{}", flip_middle(s)),
        ),
        jwt(
            "signature spliced from another valid JWT",
            format!("{h}.{p}.{other_sig}"),
        ),
        jwt(
            "forged with an attacker key under the real kid",
            attacker_sign(
                &json!({"alg": "RS256", "kid": kid, "typ": "JWT"}),
                &evil_claims,
            ),
        ),
        jwt(
            "embedded jwk header with the attacker's key",
            attacker_sign(
                &json!({"alg": "RS256", "kid": kid, "typ": "JWT", "jwk": attacker_jwk}),
                &evil_claims,
            ),
        ),
        jwt(
            "jku header pointing at a key set",
            attacker_sign(
                &json!({"alg": "RS256", "kid": kid, "typ": "JWT",
                        "jku": format!("{}/v1/b2b/sessions/jwks/{}", f.emu.base_url(), f.emu.project_id())}),
                &evil_claims,
            ),
        ),
        // --- structure ------------------------------------------------------------
        jwt("truncated signature", good[..good.len() - 10].to_owned()),
        jwt("signature removed", format!("{h}.{p}.")),
        jwt("two segments", format!("{h}.{p}")),
        jwt("header only", h.clone()),
        jwt("extra segment", format!("{good}.{s}")),
        jwt("five segments (JWE shape)", format!("{h}.{p}.{s}.{s}.{s}")),
        jwt("empty segments", "..".to_owned()),
        jwt("empty header", format!(".{p}.{s}")),
        jwt("empty payload", format!("{h}..{s}")),
        jwt("not a JWT at all", "garbage".to_owned()),
        jwt("percent-encoded dots", good.replace('.', "%2E")),
        // --- algorithms -----------------------------------------------------------
        jwt(
            "alg none, no signature",
            format!(
                "{}.{p}.",
                b64(json!({"alg": "none", "kid": kid, "typ": "JWT"}).to_string())
            ),
        ),
        jwt(
            "alg none, original signature",
            format!(
                "{}.{p}.{s}",
                b64(json!({"alg": "none", "kid": kid}).to_string())
            ),
        ),
        jwt(
            "alg NONE",
            format!(
                "{}.{p}.{s}",
                b64(json!({"alg": "NONE", "kid": kid}).to_string())
            ),
        ),
        jwt(
            "HS256 keyed with the public key PEM",
            forge.hs256(forge.public_pem().as_bytes()),
        ),
        jwt(
            "HS256 keyed with the public key SPKI DER",
            forge.hs256(&forge.public_spki_der()),
        ),
        jwt(
            "HS256 keyed with the PKCS#1 DER",
            forge.hs256(&forge.public_pkcs1_der()),
        ),
        jwt(
            "HS256 keyed with the modulus n",
            forge.hs256(&forge.public_n()),
        ),
        jwt("RS384, really signed", {
            let header = json!({"alg": "RS384", "kid": kid, "typ": "JWT"}).to_string();
            let input = format!("{}.{p}", b64(header));
            sign_input(&forge.emu_key, &RSA_PKCS1_SHA384, &input)
        }),
        jwt("PS256, really signed", {
            let header = json!({"alg": "PS256", "kid": kid, "typ": "JWT"}).to_string();
            let input = format!("{}.{p}", b64(header));
            sign_input(&forge.emu_key, &RSA_PSS_SHA256, &input)
        }),
        jwt(
            "ES256 header",
            format!(
                "{}.{p}.{s}",
                b64(json!({"alg": "ES256", "kid": kid, "typ": "JWT"}).to_string())
            ),
        ),
        jwt(
            "duplicate alg (none then RS256)",
            forge.signed_header(&format!(
                r#"{{"alg":"none","alg":"RS256","kid":{}}}"#,
                json!(kid)
            )),
        ),
        // --- kid ------------------------------------------------------------------
        jwt(
            "missing kid",
            forge.signed_header(r#"{"alg":"RS256","typ":"JWT"}"#),
        ),
        jwt(
            "empty kid",
            forge.signed_header(r#"{"alg":"RS256","kid":"","typ":"JWT"}"#),
        ),
        jwt(
            "null kid",
            forge.signed_header(r#"{"alg":"RS256","kid":null,"typ":"JWT"}"#),
        ),
        jwt(
            "numeric kid",
            forge.signed_header(r#"{"alg":"RS256","kid":7,"typ":"JWT"}"#),
        ),
        jwt(
            "array kid",
            forge.signed_header(&format!(r#"{{"alg":"RS256","kid":[{}]}}"#, json!(kid))),
        ),
        jwt(
            "200-character kid",
            forge.signed_header(&json!({"alg": "RS256", "kid": "k".repeat(200)}).to_string()),
        ),
        // 10 KB does not fit in a cookie: refused before it is parsed.
        with_reason(
            jwt(
                "10 KB kid",
                forge.signed_header(&huge_kid_header.to_string()),
            ),
            Reason::InvalidCredentials,
        ),
        unknown_kid(
            "unknown kid, real key",
            forge.signed_header(
                &json!({"alg": "RS256", "kid": "jwk-test-unknown", "typ": "JWT"}).to_string(),
            ),
        ),
        unknown_kid(
            "path traversal kid",
            forge.signed_header(
                &json!({"alg": "RS256", "kid": "../../../../etc/passwd"}).to_string(),
            ),
        ),
        unknown_kid("valid JWT of another Stytch project", other_project_jwt),
        // --- header shape ---------------------------------------------------------
        jwt(
            "typ at+jwt",
            forge.signed_header(&json!({"alg": "RS256", "kid": kid, "typ": "at+jwt"}).to_string()),
        ),
        jwt("header is a JSON array", forge.signed_header("[1]")),
        jwt("header is not JSON", forge.signed_header("not json")),
        jwt(
            "deeply nested header field",
            forge.signed_header(&format!(
                r#"{{"alg":"RS256","kid":{},"x":{deep}}}"#,
                json!(kid)
            )),
        ),
        // --- base64 ---------------------------------------------------------------
        jwt(
            "non-base64url chars in header",
            format!("!{}.{p}.{s}", &h[1..]),
        ),
        jwt(
            "non-base64url chars in payload",
            format!("{h}.*{}.{s}", &p[1..]),
        ),
        jwt("standard base64 chars in signature", {
            let standard = s.replace('-', "+").replace('_', "/");
            let standard = if standard == *s {
                format!("+{}", &s[1..])
            } else {
                standard
            };
            format!("{h}.{p}.{standard}")
        }),
        jwt(
            "non-base64url chars in signature",
            format!(
                "{h}.{p}.{}",
                s.replace(|c: char| c.is_ascii_alphabetic(), "+")
            ),
        ),
        jwt(
            "padded signature",
            format!("{h}.{p}.{}", URL_SAFE.encode(decode_segment(s))),
        ),
        jwt("padded signature (extra ==)", format!("{good}==")),
        jwt("padded header, re-signed", {
            let input = format!("{}.{p}", Forge::padded(&forge.header()));
            sign_input(&forge.emu_key, &RSA_PKCS1_SHA256, &input)
        }),
        jwt("padded payload, re-signed", {
            let input = format!("{h}.{}", Forge::padded(&forge.payload()));
            sign_input(&forge.emu_key, &RSA_PKCS1_SHA256, &input)
        }),
        // --- payload shape (validly signed) ---------------------------------------
        jwt("payload is a JSON array", forge.signed_payload("[1]")),
        jwt("payload is null", forge.signed_payload("null")),
        jwt("payload is a number", forge.signed_payload("42")),
        jwt("payload is a string", forge.signed_payload(r#""claims""#)),
        jwt("payload is not JSON", forge.signed_payload("hello")),
        jwt(
            "payload with trailing garbage",
            forge.signed_payload(&format!("{}x", forge.payload())),
        ),
        jwt(
            "payload with deeply nested claim",
            forge.signed_payload(&forge.payload_with_leading(&format!(r#""deep":{deep}"#))),
        ),
        jwt(
            "duplicate sub (attacker's first)",
            forge.signed_payload(
                &forge.payload_with_leading(&format!(r#""sub":{}"#, json!(other_member))),
            ),
        ),
        jwt(
            "duplicate aud",
            forge.signed_payload(&forge.payload_with_leading(r#""aud":["project-test-other"]"#)),
        ),
        jwt(
            "duplicate exp",
            forge.signed_payload(
                &forge.payload_with_leading(&format!(r#""exp":{}"#, now + 100_000)),
            ),
        ),
        jwt(
            "duplicate session claim",
            forge.signed_payload(
                &forge.payload_with_leading(&format!(r#"{}:{{}}"#, json!(session_claim))),
            ),
        ),
        jwt("duplicate session id", dup_session_id),
        // --- claim types (validly signed) -----------------------------------------
        jwt(
            "sub is a number",
            forge.signed_claims(|c| c["sub"] = json!(123)),
        ),
        jwt(
            "iss is a number",
            forge.signed_claims(|c| c["iss"] = json!(1)),
        ),
        jwt(
            "aud is a number",
            forge.signed_claims(|c| c["aud"] = json!(1)),
        ),
        jwt(
            "aud is an object",
            forge.signed_claims(|c| c["aud"] = json!({"0": "x"})),
        ),
        jwt(
            "session id is a number",
            forge.signed_claims(|c| c[session_claim]["id"] = json!(1)),
        ),
        jwt(
            "organization_id is a number",
            forge.signed_claims(|c| c[org_claim]["organization_id"] = json!(1)),
        ),
        jwt(
            "exp is a float",
            forge.signed_claims(|c| c["exp"] = json!(1.5e9)),
        ),
        jwt(
            "exp is an integral float",
            forge.signed_payload(&forge.payload().replace(
                &format!(r#""exp":{}"#, forge.claims["exp"]),
                &format!(r#""exp":{}.0"#, forge.claims["exp"]),
            )),
        ),
        jwt(
            "exp is a string",
            forge.signed_claims(|c| c["exp"] = json!(c["exp"].to_string())),
        ),
        jwt(
            "iat is a string",
            forge.signed_claims(|c| c["iat"] = json!(c["iat"].to_string())),
        ),
        jwt(
            "nbf is a string",
            forge.signed_claims(|c| c["nbf"] = json!(c["nbf"].to_string())),
        ),
        jwt(
            "exp is negative",
            forge.signed_claims(|c| c["exp"] = json!(-1)),
        ),
        jwt(
            "iat is negative",
            forge.signed_claims(|c| c["iat"] = json!(-1)),
        ),
        jwt(
            "nbf is negative",
            forge.signed_claims(|c| c["nbf"] = json!(-1)),
        ),
        jwt(
            "exp is 1e400",
            forge.signed_payload(&forge.payload().replace(
                &format!(r#""exp":{}"#, forge.claims["exp"]),
                r#""exp":1e400"#,
            )),
        ),
        jwt(
            "iat is u64::MAX + 1",
            forge.signed_payload(&forge.payload().replace(
                &format!(r#""iat":{}"#, forge.claims["iat"]),
                r#""iat":18446744073709551616"#,
            )),
        ),
        // --- claim values (validly signed) ----------------------------------------
        jwt(
            "iss of another project",
            forge.signed_claims(|c| c["iss"] = json!("stytch.com/project-test-other")),
        ),
        jwt("empty iss", forge.signed_claims(|c| c["iss"] = json!(""))),
        jwt(
            "iss with a trailing slash",
            forge.signed_claims(|c| c["iss"] = json!(format!("{}/", c["iss"].as_str().unwrap()))),
        ),
        jwt(
            "iss in another case",
            forge.signed_claims(|c| c["iss"] = json!(c["iss"].as_str().unwrap().to_uppercase())),
        ),
        jwt(
            "missing iss",
            forge.signed_claims(|c| {
                c.as_object_mut().unwrap().remove("iss");
            }),
        ),
        jwt(
            "aud of another project",
            forge.signed_claims(|c| c["aud"] = json!(["project-test-other"])),
        ),
        jwt("empty aud", forge.signed_claims(|c| c["aud"] = json!([]))),
        jwt(
            "missing aud",
            forge.signed_claims(|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
        ),
        jwt("empty sub", forge.signed_claims(|c| c["sub"] = json!(""))),
        jwt(
            "missing sub",
            forge.signed_claims(|c| {
                c.as_object_mut().unwrap().remove("sub");
            }),
        ),
        jwt(
            "missing exp",
            forge.signed_claims(|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        jwt(
            "missing iat",
            forge.signed_claims(|c| {
                c.as_object_mut().unwrap().remove("iat");
            }),
        ),
        jwt(
            "missing session claim",
            forge.signed_claims(|c| {
                c.as_object_mut().unwrap().remove(session_claim);
            }),
        ),
        jwt(
            "missing organization claim",
            forge.signed_claims(|c| {
                c.as_object_mut().unwrap().remove(org_claim);
            }),
        ),
        jwt(
            "session claim is a string",
            forge.signed_claims(|c| c[session_claim] = json!("session")),
        ),
        jwt(
            "empty session id",
            forge.signed_claims(|c| c[session_claim]["id"] = json!("")),
        ),
        jwt(
            "missing session id",
            forge.signed_claims(|c| {
                c[session_claim].as_object_mut().unwrap().remove("id");
            }),
        ),
        jwt(
            "empty organization_id",
            forge.signed_claims(|c| c[org_claim]["organization_id"] = json!("")),
        ),
        jwt(
            "started_at not RFC 3339",
            forge.signed_claims(|c| c[session_claim]["started_at"] = json!("yesterday")),
        ),
        jwt(
            "expires_at not RFC 3339",
            forge.signed_claims(|c| c[session_claim]["expires_at"] = json!(12)),
        ),
        jwt(
            "roles is a string",
            forge.signed_claims(|c| c[session_claim]["roles"] = json!("stytch_admin")),
        ),
        jwt(
            "roles are numbers",
            forge.signed_claims(|c| c[session_claim]["roles"] = json!([1, 2])),
        ),
        jwt(
            "roles contain null",
            forge.signed_claims(|c| c[session_claim]["roles"] = json!(["stytch_member", null])),
        ),
        jwt(
            "roles is an object",
            forge.signed_claims(|c| c[session_claim]["roles"] = json!({"stytch_admin": true})),
        ),
        jwt(
            "factors not an array",
            forge.signed_claims(|c| c[session_claim]["authentication_factors"] = json!("password")),
        ),
        // --- stale (expired) JWTs must not be sent to Stytch when otherwise bad ---
        jwt(
            "expired and for another audience",
            stale(|c| c["aud"] = json!(["project-test-other"])),
        ),
        jwt(
            "expired and without session claim",
            stale(|c| {
                c.as_object_mut()
                    .unwrap()
                    .remove("https://stytch.com/session");
            }),
        ),
        jwt(
            "expired and another issuer",
            stale(|c| c["iss"] = json!("stytch.com/project-test-other")),
        ),
        jwt("expired and tampered", {
            let jwt = stale(|_| {});
            let (input, sig) = jwt.rsplit_once('.').unwrap();
            format!("{input}.{}", flip_middle(sig))
        }),
        jwt("expired, quoted, tampered", {
            let jwt = stale(|_| {});
            format!("\"{}\"", &jwt[..jwt.len() - 2])
        }),
        // --- cookie level -----------------------------------------------------------
        header(
            "5 KB JWT cookie (validly signed)",
            format!("stytch_session_jwt={fat}"),
            Reason::InvalidCredentials,
        ),
        header(
            "5 KB token cookie",
            format!("stytch_session={}", "a".repeat(5 * 1024)),
            Reason::InvalidCredentials,
        ),
        header(
            "1 MB JWT cookie",
            format!("stytch_session_jwt={}", "a".repeat(1 << 20)),
            Reason::InvalidCredentials,
        ),
        header(
            "1 MB token cookie",
            format!("stytch_session={}", "a".repeat(1 << 20)),
            Reason::InvalidCredentials,
        ),
        header(
            "200 JWT cookies",
            vec![format!("stytch_session_jwt={good}"); 200].join("; "),
            Reason::InvalidCredentials,
        ),
        header(
            "200 token cookies",
            vec![format!("stytch_session={}", f.session.session_token); 200].join("; "),
            Reason::InvalidCredentials,
        ),
        header(
            "200 unrelated cookies, no session",
            (0..200)
                .map(|i| format!("c{i}=v{i}"))
                .collect::<Vec<_>>()
                .join("; "),
            Reason::MissingCredentials,
        ),
        header(
            "duplicate JWT cookie, same valid value",
            format!("stytch_session_jwt={good}; stytch_session_jwt={good}"),
            Reason::InvalidCredentials,
        ),
        header(
            "duplicate JWT cookie, valid then forged",
            format!("stytch_session_jwt={good}; stytch_session_jwt={h}.{evil_payload}.{s}"),
            Reason::InvalidCredentials,
        ),
        header(
            "duplicate token cookie",
            format!(
                "stytch_session={0}; stytch_session={0}",
                f.session.session_token
            ),
            Reason::InvalidCredentials,
        ),
        Case {
            name: "duplicate JWT cookie across two Cookie headers",
            input: Input::Headers(vec![
                format!("stytch_session_jwt={good}").into_bytes(),
                format!("stytch_session_jwt={good}").into_bytes(),
            ]),
            reason: Reason::InvalidCredentials,
            unknown_kid: false,
        },
        header(
            "invalid UTF-8 JWT cookie",
            b"stytch_session_jwt=\xff\xfe\xfd".to_vec(),
            Reason::InvalidCredentials,
        ),
        header(
            "valid JWT with a trailing invalid byte",
            [format!("stytch_session_jwt={good}").as_bytes(), b"\xc3"].concat(),
            Reason::InvalidCredentials,
        ),
        header(
            "invalid UTF-8 token cookie",
            b"stytch_session=\xc3\x28abc".to_vec(),
            Reason::InvalidCredentials,
        ),
        header(
            "empty JWT cookie",
            "stytch_session_jwt=",
            Reason::InvalidCredentials,
        ),
        header(
            "empty quoted JWT cookie",
            r#"stytch_session_jwt="""#,
            Reason::InvalidCredentials,
        ),
        header(
            "unterminated quote",
            format!("stytch_session_jwt=\"{good}"),
            Reason::InvalidCredentials,
        ),
        header(
            "doubly quoted",
            format!("stytch_session_jwt=\"\"{good}\"\""),
            Reason::InvalidCredentials,
        ),
        header(
            "inner quote",
            format!("stytch_session_jwt={h}.\"{p}.{s}"),
            Reason::InvalidCredentials,
        ),
        header(
            "space inside value",
            format!("stytch_session_jwt={h}. {p}.{s}"),
            Reason::InvalidCredentials,
        ),
        header(
            "tab inside value",
            format!("stytch_session_jwt={h}.\t{p}.{s}"),
            Reason::InvalidCredentials,
        ),
        header(
            "backslash inside value",
            format!("stytch_session_jwt={h}.\\{p}.{s}"),
            Reason::InvalidCredentials,
        ),
        header(
            "comma-separated cookies",
            format!("stytch_session_jwt={good}, other=1"),
            Reason::InvalidCredentials,
        ),
        header(
            "quoted forged JWT",
            format!("stytch_session_jwt=\"{h}.{evil_payload}.{s}\""),
            Reason::InvalidToken,
        ),
        header(
            "JWT cookie name in upper case",
            format!("STYTCH_SESSION_JWT={good}"),
            Reason::MissingCredentials,
        ),
        header(
            "JWT cookie name with a prefix",
            format!("xstytch_session_jwt={good}"),
            Reason::MissingCredentials,
        ),
    ]
}

fn request(path: &str, input: &Input) -> Request<Body> {
    let mut req = Request::builder().method("GET").uri(path);
    match input {
        Input::Jwt(jwt) => {
            req = req.header(
                COOKIE,
                HeaderValue::from_str(&cookies(Some(jwt), None)).unwrap(),
            );
        }
        Input::Header(bytes) => {
            req = req.header(COOKIE, HeaderValue::from_bytes(bytes).unwrap());
        }
        Input::Headers(all) => {
            for bytes in all {
                req = req.header(COOKIE, HeaderValue::from_bytes(bytes).unwrap());
            }
        }
    }
    req.body(Body::empty()).unwrap()
}

/// A valid JWT of a second, unrelated Stytch project (its own key and kid).
async fn foreign_jwt() -> (StytchEmulator, String) {
    let emu = StytchEmulator::start().await;
    let org = emu.create_organization("evil");
    let member = emu.create_member(&org, "mallory@evil.test", &["stytch_admin"]);
    let jwt = emu.create_session(&member).session_jwt;
    (emu, jwt)
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_credentials_are_refused_without_calling_stytch() {
    let f = fixture().await;
    let app = app(&f.auth);
    // Load the keys with a valid request: the one JWKS fetch allowed. It also makes
    // its header a known one, so the cases below that keep the genuine header skip
    // header parsing; they must still fail on their signature or claims.
    let res = get_with(&app, "/me", &cookies(Some(&f.session.session_jwt), None)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(f.emu.requests(Endpoint::Jwks), 1);

    let forge = Forge::new(&f.emu, &f.session.session_jwt);
    // Controls: the forge's re-signed tokens are accepted when nothing is changed,
    // so the validly signed cases below fail on their claims, not their signature.
    for (name, control) in [
        ("re-signed claims", forge.signed_claims(|_| {})),
        ("re-signed header", forge.signed_header(&forge.header())),
        ("re-signed payload", forge.signed_payload(&forge.payload())),
        (
            "leading extra claim",
            forge.signed_payload(&forge.payload_with_leading(r#""tier":"gold""#)),
        ),
    ] {
        let res = get_with(&app, "/me", &cookies(Some(&control), None)).await;
        assert_eq!(res.status, StatusCode::OK, "control {name}: {}", res.body);
        assert_eq!(res.body, f.member, "control {name}");
    }
    let (_foreign, foreign) = foreign_jwt().await;
    let cases = hostile_cases(&f, &forge, foreign);
    assert!(cases.len() > 100, "{} cases", cases.len());
    let mut names = std::collections::HashSet::new();
    for case in &cases {
        assert!(names.insert(case.name), "duplicate case name {}", case.name);
    }

    let mut failures = Vec::new();
    let mut unknown_kid_fetches = 0;
    for case in &cases {
        let jwks_before = f.emu.requests(Endpoint::Jwks);
        let failures_before = f.auth.metrics().failures_for(case.reason);

        let res = send_request(&app, request("/me", &case.input)).await;
        let got = (res.status, res.reason());
        let expected = (StatusCode::UNAUTHORIZED, case.reason.as_str().to_owned());
        if got != expected {
            failures.push(format!(
                "{}: expected {expected:?}, got {got:?} {}",
                case.name, res.body
            ));
        }
        if res.status == StatusCode::UNAUTHORIZED && res.headers.get("www-authenticate").is_none() {
            failures.push(format!("{}: 401 without WWW-Authenticate", case.name));
        }
        if f.auth.metrics().failures_for(case.reason) <= failures_before {
            failures.push(format!(
                "{}: failure not counted under {}",
                case.name, case.reason
            ));
        }

        // The optional extractor treats every such request as anonymous.
        let res = send_request(&app, request("/maybe", &case.input)).await;
        if (res.status, res.body.as_str()) != (StatusCode::OK, "anonymous") {
            failures.push(format!(
                "{}: /maybe answered {} {}",
                case.name, res.status, res.body
            ));
        }

        if f.emu.requests(Endpoint::Authenticate) != 0 {
            failures.push(format!("{}: called sessions/authenticate", case.name));
            f.emu.reset_request_counts();
        }
        let fetched = f.emu.requests(Endpoint::Jwks) - jwks_before;
        if case.unknown_kid {
            unknown_kid_fetches += fetched;
        } else if fetched != 0 {
            failures.push(format!("{}: {fetched} JWKS fetches", case.name));
        }
    }
    assert!(
        unknown_kid_fetches <= 1,
        "{unknown_kid_fetches} JWKS fetches for unknown kids within one cooldown"
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 0);
    assert_eq!(f.emu.requests(Endpoint::Revoke), 0);

    // The valid session still works after all that.
    let res = get_with(&app, "/me", &cookies(Some(&f.session.session_jwt), None)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);

    // Control for the "expired and ..." cases: an expired JWT with nothing else
    // wrong does go to Stytch (which renews it), so zero calls above is meaningful.
    let stale = forge.signed_claims(|c| {
        c["iat"] = json!(forge.now - 1_000);
        c["nbf"] = json!(forge.now - 1_000);
        c["exp"] = json!(forge.now - 700);
    });
    let res = get_with(&app, "/me", &cookies(Some(&stale), None)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 1);
}

/// JWTs signed by Stytch that are not valid by this server's clock alone: issued
/// ahead of it (the server's clock is behind Stytch's by more than the leeway), or past
/// the end of the session as the JWT recorded it (Stytch may have extended the session
/// since). Like an expired JWT, each costs one call and Stytch's answer decides: here
/// the session is alive, so each is accepted and renewed. Like the official SDKs'
/// `authenticate_jwt`, and never for a token whose signature failed.
#[tokio::test]
async fn validly_signed_jwts_not_valid_by_our_clock_are_decided_by_stytch() {
    let f = fixture().await;
    let app = app(&f.auth);
    let res = get_with(&app, "/me", &cookies(Some(&f.session.session_jwt), None)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let forge = Forge::new(&f.emu, &f.session.session_jwt);
    let now = forge.now;
    let session_claim = "https://stytch.com/session";
    let cases = [
        (
            "iat in the future",
            forge.signed_claims(|c| {
                c["iat"] = json!(now + 60);
                c["nbf"] = json!(now + 60);
                c["exp"] = json!(now + 360);
            }),
        ),
        (
            "nbf in the future",
            forge.signed_claims(|c| c["nbf"] = json!(now + 60)),
        ),
        (
            "iat is u64::MAX",
            forge.signed_claims(|c| c["iat"] = json!(u64::MAX)),
        ),
        (
            "nbf is u64::MAX",
            forge.signed_claims(|c| c["nbf"] = json!(u64::MAX)),
        ),
        (
            "session ended, as the JWT recorded it",
            forge.signed_claims(|c| c[session_claim]["expires_at"] = json!("2001-01-01T00:00:00Z")),
        ),
    ];
    for (i, (name, jwt)) in cases.iter().enumerate() {
        let res = get_with(&app, "/me", &cookies(Some(jwt), None)).await;
        assert_eq!(res.status, StatusCode::OK, "{name}: {}", res.body);
        assert_eq!(res.body, f.member, "{name}");
        assert!(
            res.set_cookie_value("stytch_session_jwt")
                .is_some_and(|v| !v.is_empty()),
            "{name}: renewed"
        );
        assert_eq!(
            f.emu.requests(Endpoint::Authenticate),
            i as u64 + 1,
            "{name}: one call"
        );
    }
    // The same tokens with a broken signature never reach Stytch.
    for (name, jwt) in &cases {
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        let tampered = format!("{input}.{}", flip_middle(sig));
        let res = get_with(&app, "/me", &cookies(Some(&tampered), None)).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{name}: {}", res.body);
    }
    assert_eq!(
        f.emu.requests(Endpoint::Authenticate),
        cases.len() as u64,
        "no call for a tampered token"
    );
}

#[tokio::test]
async fn ten_kb_kid_is_an_invalid_token_when_the_cookie_cap_allows_it() {
    let f = fixture_with(|b| b.max_cookie_size(64 * 1024)).await;
    let app = app(&f.auth);
    let forge = Forge::new(&f.emu, &f.session.session_jwt);
    let jwt = forge.signed_header(&json!({"alg": "RS256", "kid": "k".repeat(10_000)}).to_string());
    let res = get_with(&app, "/me", &cookies(Some(&jwt), None)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.body);
    assert_eq!(res.reason(), Reason::InvalidToken.as_str());
    // A 6 KB kid (the token still under 8 KB) is refused as well, before any fetch.
    let jwt = forge.signed_header(&json!({"alg": "RS256", "kid": "k".repeat(6_000)}).to_string());
    let res = get_with(&app, "/me", &cookies(Some(&jwt), None)).await;
    assert_eq!(res.reason(), Reason::InvalidToken.as_str(), "{}", res.body);
    assert_eq!(f.emu.requests(Endpoint::Jwks), 0);
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 0);
}

/// Benign oddities must not be caught by the strictness above.
#[tokio::test]
async fn benign_cookie_variants_still_authenticate() {
    let f = fixture().await;
    let app = app(&f.auth);
    let good = &f.session.session_jwt;
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "quoted JWT",
            vec![format!("stytch_session_jwt=\"{good}\"").into_bytes()],
        ),
        (
            "among 200 unrelated cookies",
            vec![
                (0..200)
                    .map(|i| format!("c{i}=v{i}"))
                    .chain([format!("stytch_session_jwt={good}")])
                    .collect::<Vec<_>>()
                    .join("; ")
                    .into_bytes(),
            ],
        ),
        (
            "next to an unrelated cookie with invalid bytes",
            vec![
                [
                    b"junk=\xff\xfe; ".as_slice(),
                    format!("stytch_session_jwt={good}").as_bytes(),
                ]
                .concat(),
            ],
        ),
        (
            "surrounded by whitespace",
            vec![format!("  stytch_session_jwt = {good}  ;").into_bytes()],
        ),
        (
            "in a second Cookie header",
            vec![
                b"a=1".to_vec(),
                format!("stytch_session_jwt={good}").into_bytes(),
            ],
        ),
        (
            // A JWT is never exchanged for the session token: the token is only read
            // (and refused when malformed) for requests without a JWT.
            "next to a session token cookie that is not a valid value",
            vec![
                [
                    format!("stytch_session_jwt={good}; stytch_session=").as_bytes(),
                    b"a b\xff",
                ]
                .concat(),
            ],
        ),
    ];
    for (name, headers) in cases {
        let res = send_request(&app, request("/me", &Input::Headers(headers))).await;
        assert_eq!(res.status, StatusCode::OK, "{name}: {}", res.body);
        assert_eq!(res.body, f.member, "{name}");
    }
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 0);
}

/// `exp = u64::MAX` on a token signed with the real key is accepted, but the age
/// limit (by `iat`) still bounds how long it is trusted without Stytch.
#[tokio::test]
async fn far_future_exp_is_still_bounded_by_max_token_age() {
    let f = fixture().await;
    let app = app(&f.auth);
    let forge = Forge::new(&f.emu, &f.session.session_jwt);
    let jwt = forge.signed_claims(|c| c["exp"] = json!(u64::MAX));
    let cookie = cookies(Some(&jwt), None);
    let res = get_with(&app, "/me", &cookie).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 0);

    f.emu.clock().advance(Duration::from_secs(301));
    let res = get_with(&app, "/me", &cookie).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(
        f.emu.requests(Endpoint::Authenticate),
        1,
        "too old: Stytch decides"
    );
    assert!(res.set_cookie_value("stytch_session_jwt").is_some());
}

// ----------------------------------------------------------------------------------
// Disagreeing cookies

#[tokio::test]
async fn jwt_wins_over_a_disagreeing_session_token_without_calls() {
    let f = fixture().await;
    let app = app(&f.auth);
    let member_b = f.emu.create_member(&f.org, "bob@acme.test", &[]);
    let session_b = f.emu.create_session(&member_b);

    let cookie = cookies(Some(&f.session.session_jwt), Some(&session_b.session_token));
    let res = get_with(&app, "/me", &cookie).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body, f.member, "authenticated as the JWT's member");
    assert_ne!(res.body, member_b);
    assert!(res.set_cookies().is_empty(), "{:?}", res.set_cookies());
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 0);

    // Same with the cookies in the other order.
    let cookie = format!(
        "stytch_session={}; stytch_session_jwt={}",
        session_b.session_token, f.session.session_jwt
    );
    let res = get_with(&app, "/me", &cookie).await;
    assert_eq!(res.body, f.member);
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 0);
}

// ----------------------------------------------------------------------------------
// Credentials never reach the logs

#[tokio::test]
async fn no_credential_appears_in_trace_logs() {
    let captured = CapturedLogs::default();
    // Global, so that tasks on any thread (client, single-flight, emulator) are seen.
    tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .with_ansi(false)
        .with_writer(captured.clone())
        .try_init()
        .expect("the only test in this binary that installs a subscriber");

    let f = fixture().await;
    let app = app(&f.auth);
    let mut secrets = vec![
        f.session.session_jwt.clone(),
        f.session.session_token.clone(),
        f.emu.secret().to_owned(),
        STANDARD.encode(format!("{}:{}", f.emu.project_id(), f.emu.secret())),
    ];
    let forge = Forge::new(&f.emu, &f.session.session_jwt);
    let forged = format!("{}.{}.{}", forge.h, forge.p, flip_middle(&forge.s));
    secrets.push(forged.clone());

    // Valid (local, then cached), invalid, and token-only (remote) requests.
    let jwt = cookies(Some(&f.session.session_jwt), None);
    assert_eq!(get_with(&app, "/me", &jwt).await.status, StatusCode::OK);
    assert_eq!(get_with(&app, "/me", &jwt).await.status, StatusCode::OK);
    let res = get_with(&app, "/me", &cookies(Some(&forged), None)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let res = get_with(&app, "/me", &cookies(None, Some(&f.session.session_token))).await;
    assert_eq!(res.status, StatusCode::OK);
    secrets.extend(res.set_cookie_value("stytch_session_jwt"));

    // Renewed.
    f.emu.clock().advance(Duration::from_secs(301));
    let res = get_with(&app, "/me", &jwt).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let renewed = res.set_cookie_value("stytch_session_jwt").unwrap();
    secrets.push(renewed.clone());

    // Logged out, then revoked at Stytch.
    let res = send(
        &app,
        "POST",
        "/logout",
        Some(&cookies(Some(&renewed), None)),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    let res = get_with(&app, "/me", &cookies(Some(&renewed), None)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let other = f.emu.create_session(&f.member);
    secrets.extend([other.session_jwt.clone(), other.session_token.clone()]);
    f.emu.revoke_session(&other.member_session_id);
    let res = get_with(&app, "/me", &cookies(None, Some(&other.session_token))).await;
    assert_eq!(res.reason(), Reason::SessionRevoked.as_str());
    f.emu.clock().advance(Duration::from_secs(301));
    let res = get_with(&app, "/me", &cookies(Some(&other.session_jwt), None)).await;
    assert_eq!(res.reason(), Reason::SessionRevoked.as_str());

    // Stytch down.
    f.emu.set_refusing_connections(true);
    let res = get_with(&app, "/me", &cookies(None, Some(&f.session.session_token))).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);

    let log = captured.text();
    if let Ok(path) = std::env::var("HOSTILE_DUMP_LOG") {
        std::fs::write(path, &log).unwrap();
    }
    assert!(log.contains("axum_stytch"), "nothing captured:\n{log}");
    for secret in &secrets {
        assert!(!secret.is_empty());
        assert!(
            !log.contains(secret.as_str()),
            "a credential was logged:\n{log}"
        );
        // A JWT's signature segment is enough to rebuild it from its (public) claims.
        if let Some((_, signature)) = secret.rsplit_once('.') {
            assert!(
                !log.contains(signature),
                "a JWT signature was logged:\n{log}"
            );
        }
    }
}
