//! `GET /v1/b2b/sessions/jwks/{project_id}`, and the key ring behind it:
//! rotation, retirement and signing with the current key.

use std::time::SystemTime;

use serde_json::{Map, Value};

use super::Project;
use crate::testing::keys::SigningKey;
use crate::testing::model::new_id;
use crate::testing::wire::{self, ApiError};

impl Project {
    /// `GET /v1/b2b/sessions/jwks/{project_id}`.
    pub(crate) fn jwks(&self, project_id: &str) -> Result<Value, ApiError> {
        if project_id != self.config.project_id {
            return Err(ApiError::project_not_found());
        }
        let mut fields = Map::new();
        fields.insert("keys".into(), Value::Array(self.keys.jwks()));
        Ok(wire::success(self.config.env, fields))
    }

    pub(crate) fn rotate_keys(&mut self, now: SystemTime) -> String {
        let key = SigningKey::generate(new_id("jwk", self.config.env), now);
        let kid = key.kid.clone();
        self.keys.push(key);
        kid
    }

    pub(crate) fn retire_key(&mut self, kid: &str, now: SystemTime) {
        if self.keys.signing().kid == kid {
            self.rotate_keys(now);
        }
        if self.keys.len() > 1 {
            self.keys.remove(kid);
        }
    }

    pub(crate) fn signing_kid(&self) -> String {
        self.keys.signing().kid.clone()
    }

    pub(crate) fn signing_key_pkcs8_der(&self) -> Vec<u8> {
        self.keys.signing().pkcs8_der()
    }

    /// `claims` signed under the header of minted JWTs.
    pub(crate) fn sign_claims(&self, claims: &Value) -> String {
        self.keys.sign_raw(&self.keys.header(), &claims.to_string())
    }

    /// `header` and `payload` verbatim, signed with the current key.
    pub(crate) fn sign_raw(&self, header: &str, payload: &str) -> String {
        self.keys.sign_raw(header, payload)
    }
}
