//! RSA keys and JWT signing for unit tests.

use std::sync::OnceLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{
    KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

pub(crate) struct TestKey {
    kid: String,
    pair: KeyPair,
    public: ParsedPublicKey,
}

impl TestKey {
    fn generate(kid: &str) -> Self {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("keygen");
        let public = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pair.public_key().as_ref())
            .expect("public key");
        Self {
            kid: kid.into(),
            pair,
            public,
        }
    }

    pub(crate) fn get() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(|| TestKey::generate("jwk-test-unit-1"))
    }

    pub(crate) fn other() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(|| TestKey::generate("jwk-test-unit-2"))
    }

    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    pub(crate) fn public(&self) -> &ParsedPublicKey {
        &self.public
    }

    /// Signs `claims` with this key and a standard Stytch header.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "kid": self.kid, "typ": "JWT"});
        self.sign_raw(
            &serde_json::to_vec(&header).unwrap(),
            &serde_json::to_vec(claims).unwrap(),
        )
    }

    /// Signs arbitrary header and payload bytes.
    pub(crate) fn sign_raw(&self, header: &[u8], payload: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let mut sig = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

/// Claims shaped like a real Stytch session JWT issued at `iat`.
pub(crate) fn claims_json(project_id: &str, iat: u64) -> Value {
    json!({
        "aud": [project_id],
        "exp": iat + 300,
        "https://stytch.com/organization": {"organization_id": "organization-test-1", "slug": "acme"},
        "https://stytch.com/session": {
            "id": "member-session-test-1",
            "started_at": "2026-01-01T00:00:00Z",
            "last_accessed_at": "2026-01-01T00:00:00Z",
            "expires_at": "2099-01-01T00:00:00Z",
            "attributes": {"user_agent": "", "ip_address": ""},
            "authentication_factors": [{"type": "password", "delivery_method": "knowledge", "last_authenticated_at": "2026-01-01T00:00:00Z"}],
            "roles": ["stytch_member", "editor"]
        },
        "iat": iat,
        "iss": format!("stytch.com/{project_id}"),
        "nbf": iat,
        "sub": "member-test-1",
        "tenant_tier": "gold"
    })
}
