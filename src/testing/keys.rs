//! RSA signing keys, the JWKS document, and session-JWT minting/verification.

use std::time::{Duration, SystemTime};

use aws_lc_rs::digest;
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{
    KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaPublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};

/// Ten years, the validity of the self-signed `x5c` certificate.
const CERT_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// One RSA-2048 key with everything the JWKS needs precomputed.
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    key_pair: KeyPair,
    pkcs8: Vec<u8>,
    n: Vec<u8>,
    e: Vec<u8>,
    cert_der: Vec<u8>,
}

impl SigningKey {
    /// Generates a fresh RSA-2048 key and its self-signed certificate.
    pub(crate) fn generate(kid: String, now: SystemTime) -> Self {
        let key_pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA-2048 key generation failed");
        let pkcs8: Pkcs8V1Der<'static> = key_pair
            .as_der()
            .expect("serialising an RSA key to PKCS#8 failed");
        let pkcs8 = pkcs8.as_ref().to_vec();
        let public = key_pair.public_key();
        let n = public.modulus().big_endian_without_leading_zero().to_vec();
        let e = public.exponent().big_endian_without_leading_zero().to_vec();
        let cert_der = self_signed_cert(&pkcs8, now);
        Self {
            kid,
            key_pair,
            pkcs8,
            n,
            e,
            cert_der,
        }
    }

    /// The private key as PKCS#8 v1 DER.
    pub(crate) fn pkcs8_der(&self) -> Vec<u8> {
        self.pkcs8.clone()
    }

    /// The JWK with all nine fields Stytch serves.
    pub(crate) fn jwk(&self) -> Value {
        let thumbprint = digest::digest(&digest::SHA256, &self.cert_der);
        json!({
            "alg": "RS256",
            "e": URL_SAFE_NO_PAD.encode(&self.e),
            "key_ops": ["verify"],
            "kid": self.kid,
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(&self.n),
            "use": "sig",
            "x5c": [STANDARD.encode(&self.cert_der)],
            "x5tS256": URL_SAFE.encode(thumbprint.as_ref()),
        })
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut signature = vec![0; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .expect("RSA signing with a freshly generated key failed");
        signature
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        RsaPublicKeyComponents {
            n: &self.n,
            e: &self.e,
        }
        .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
        .is_ok()
    }
}

/// A self-signed `O=Stytch` certificate over the key, serial 1, ten years.
fn self_signed_cert(pkcs8: &[u8], now: SystemTime) -> Vec<u8> {
    let key = rcgen::KeyPair::try_from(pkcs8).expect("rcgen rejected the RSA key");
    let mut params = rcgen::CertificateParams::default();
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::OrganizationName, "Stytch");
    params.distinguished_name = name;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&[1]));
    let start = crate::clock::unix_seconds(now);
    let not_before = SystemTime::UNIX_EPOCH + Duration::from_secs(start);
    params.not_before = time::OffsetDateTime::from(not_before);
    params.not_after = time::OffsetDateTime::from(not_before + CERT_VALIDITY);
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params
        .self_signed(&key)
        .expect("self-signing the JWKS certificate failed")
        .der()
        .to_vec()
}

/// The emulator's key ring: every served key plus which one signs.
pub(crate) struct KeySet {
    keys: Vec<SigningKey>,
}

/// Why a presented JWT was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JwtRejection {
    /// Not three base64url segments of JSON, or not RS256.
    Malformed,
    /// The `kid` is not (or no longer) served.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `iss` or `aud` do not belong to this project.
    WrongAudienceOrIssuer,
}

impl KeySet {
    /// A key ring with one freshly generated key.
    pub(crate) fn new(first: SigningKey) -> Self {
        Self { keys: vec![first] }
    }

    /// The current signing key (the most recently added one).
    pub(crate) fn signing(&self) -> &SigningKey {
        self.keys
            .last()
            .expect("the emulator key ring is never empty")
    }

    /// Adds `key` and makes it the signing key.
    pub(crate) fn push(&mut self, key: SigningKey) {
        self.keys.push(key);
    }

    /// Removes the key with this kid; returns whether it existed.
    ///
    /// Callers must make sure the ring does not become empty.
    pub(crate) fn remove(&mut self, kid: &str) -> bool {
        let before = self.keys.len();
        self.keys.retain(|k| k.kid != kid);
        before != self.keys.len()
    }

    /// Number of keys served.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The JWKS `keys` array, oldest first.
    pub(crate) fn jwks(&self) -> Vec<Value> {
        self.keys.iter().map(SigningKey::jwk).collect()
    }

    /// The header of the JWTs minted with the current key. Field order matters:
    /// real tokens use exactly `alg`, `kid`, `typ`.
    pub(crate) fn header(&self) -> String {
        format!(
            r#"{{"alg":"RS256","kid":{},"typ":"JWT"}}"#,
            Value::String(self.signing().kid.clone())
        )
    }

    /// Signs `claims` with the current key and returns a compact JWS.
    pub(crate) fn mint(&self, claims: &Map<String, Value>) -> String {
        let payload = serde_json::to_string(claims).expect("serialising a JSON map cannot fail");
        self.sign_raw(&self.header(), &payload)
    }

    /// `base64url(header).base64url(payload).signature`: the two texts verbatim,
    /// RS256-signed with the current key.
    pub(crate) fn sign_raw(&self, header: &str, payload: &str) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = self.signing().sign(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// Verifies signature, `iss` and `aud` (never `exp`/`nbf`) and returns the claims.
    pub(crate) fn verify(
        &self,
        jwt: &str,
        issuer: &str,
        project_id: &str,
    ) -> Result<Map<String, Value>, JwtRejection> {
        let mut parts = jwt.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtRejection::Malformed);
        };
        let header: Map<String, Value> = decode_json(h)?;
        if header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(JwtRejection::Malformed);
        }
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .ok_or(JwtRejection::Malformed)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(JwtRejection::UnknownKey)?;
        let signature = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| JwtRejection::Malformed)?;
        let signing_input = &jwt[..h.len() + 1 + p.len()];
        if !key.verify(signing_input.as_bytes(), &signature) {
            return Err(JwtRejection::BadSignature);
        }
        let claims: Map<String, Value> = decode_json(p)?;
        if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
            return Err(JwtRejection::WrongAudienceOrIssuer);
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == project_id,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(project_id)),
            _ => false,
        };
        if !aud_ok {
            return Err(JwtRejection::WrongAudienceOrIssuer);
        }
        Ok(claims)
    }
}

/// The payload of a compact JWS, without any check; `None` if `jwt` is not one.
pub(crate) fn unverified_claims(jwt: &str) -> Option<Map<String, Value>> {
    let mut parts = jwt.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    decode_json(payload).ok()
}

fn decode_json(segment: &str) -> Result<Map<String, Value>, JwtRejection> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| JwtRejection::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtRejection::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kid: &str) -> SigningKey {
        SigningKey::generate(kid.to_owned(), SystemTime::now())
    }

    fn claims() -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("iss".into(), json!("stytch.com/project-test-x"));
        m.insert("aud".into(), json!(["project-test-x"]));
        m.insert("sub".into(), json!("member-test-1"));
        m
    }

    #[test]
    fn mint_then_verify_round_trips() {
        let set = KeySet::new(key("jwk-test-a"));
        let jwt = set.mint(&claims());
        let header = jwt.split('.').next().unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(header).unwrap(),
            br#"{"alg":"RS256","kid":"jwk-test-a","typ":"JWT"}"#
        );
        let got = set
            .verify(&jwt, "stytch.com/project-test-x", "project-test-x")
            .unwrap();
        assert_eq!(got, claims());
    }

    #[test]
    fn verify_rejects_tampering_unknown_kid_and_wrong_audience() {
        let mut set = KeySet::new(key("jwk-test-a"));
        let jwt = set.mint(&claims());
        let (rest, _sig) = jwt.rsplit_once('.').unwrap();
        let forged = format!("{rest}.{}", URL_SAFE_NO_PAD.encode([0u8; 256]));
        assert_eq!(
            set.verify(&forged, "stytch.com/project-test-x", "project-test-x"),
            Err(JwtRejection::BadSignature)
        );
        assert_eq!(
            set.verify(&jwt, "stytch.com/project-test-x", "project-test-y"),
            Err(JwtRejection::WrongAudienceOrIssuer)
        );
        assert_eq!(
            set.verify(&jwt, "https://auth.example.com", "project-test-x"),
            Err(JwtRejection::WrongAudienceOrIssuer)
        );
        assert_eq!(set.verify("a.b", "i", "p"), Err(JwtRejection::Malformed));
        assert_eq!(unverified_claims(&forged), Some(claims()));
        assert_eq!(unverified_claims("a.b"), None);
        set.push(key("jwk-test-b"));
        assert!(set.remove("jwk-test-a"));
        assert_eq!(
            set.verify(&jwt, "stytch.com/project-test-x", "project-test-x"),
            Err(JwtRejection::UnknownKey)
        );
    }

    #[test]
    fn jwk_has_all_nine_fields_and_a_matching_certificate() {
        let k = key("jwk-test-a");
        let jwk = k.jwk();
        let obj = jwk.as_object().unwrap();
        for field in [
            "kty", "alg", "use", "key_ops", "kid", "n", "e", "x5c", "x5tS256",
        ] {
            assert!(obj.contains_key(field), "missing {field}");
        }
        assert_eq!(jwk["e"], "AQAB");
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwk["n"].as_str().unwrap())
                .unwrap()
                .len(),
            256
        );
        let cert = STANDARD.decode(jwk["x5c"][0].as_str().unwrap()).unwrap();
        let thumb = URL_SAFE.decode(jwk["x5tS256"].as_str().unwrap()).unwrap();
        assert_eq!(thumb, digest::digest(&digest::SHA256, &cert).as_ref());
        assert!(jwk["x5tS256"].as_str().unwrap().ends_with('='));
        // The certificate embeds the same modulus.
        let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
        assert!(cert.windows(n.len()).any(|w| w == n.as_slice()));
    }
}
