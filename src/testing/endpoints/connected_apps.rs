//! `POST /v1/oauth2/introspect` and `POST /v1/public/{project_id}/oauth2/introspect`
//! (RFC 7662), and the Connected-App operations of the test handle: create an app,
//! mint an access token for a member, revoke it.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::Project;
use crate::testing::clients::{ConnectedApp, ConnectedAppOptions};
use crate::testing::keys;
use crate::testing::model::{AccessTokenRecord, ConnectedAppRecord, random_alphanumeric};
use crate::testing::oauth::{OAuthRequest, invalid_client, invalid_request};
use crate::testing::wire::{self, ApiError};

/// Length of an access token's `jti`, as in Stytch's.
const JTI_LENGTH: usize = 44;

impl Project {
    pub(crate) fn create_connected_app(&mut self, options: ConnectedAppOptions) -> ConnectedApp {
        let record = ConnectedAppRecord {
            client: self.new_client("connected-app", options.custom_claims),
            access_token_lifetime: options.access_token_lifetime,
        };
        let app = ConnectedApp {
            client_id: record.client.id.clone(),
            client_secret: record.client.secret.clone(),
        };
        self.connected_apps.insert(app.client_id.clone(), record);
        app
    }

    pub(crate) fn mint_connected_app_token(
        &mut self,
        client_id: &str,
        member_id: &str,
        scopes: &[&str],
        now: SystemTime,
    ) -> String {
        let app = self.connected_apps.get(client_id).unwrap_or_else(|| {
            panic!("StytchEmulator::mint_connected_app_token: unknown client_id {client_id:?}")
        });
        let member = self.members.get(member_id).unwrap_or_else(|| {
            panic!("StytchEmulator::mint_connected_app_token: unknown member_id {member_id:?}")
        });
        let org = &self.orgs[&member.org_id];
        let iat = crate::clock::unix_seconds(now);
        let exp = iat.saturating_add(app.access_token_lifetime.as_secs());
        let jti = random_alphanumeric(JTI_LENGTH);
        // Custom claims first, so Stytch's claims always win.
        let mut claims = app.client.custom_claims.clone();
        claims.insert("aud".into(), json!([self.config.project_id]));
        claims.insert("client_id".into(), json!(app.client.id));
        claims.insert("exp".into(), json!(exp));
        claims.insert(
            "https://stytch.com/organization".into(),
            json!({"organization_id": org.id, "slug": org.slug}),
        );
        claims.insert("iat".into(), json!(iat));
        claims.insert("iss".into(), json!(self.config.issuer));
        claims.insert("jti".into(), json!(jti));
        claims.insert("nbf".into(), json!(iat));
        claims.insert("scope".into(), json!(scopes.join(" ")));
        claims.insert("sub".into(), json!(member.id));
        let token = self.keys.mint(&claims);
        self.access_tokens.insert(
            jti,
            AccessTokenRecord {
                expires_at: exp,
                revoked: false,
            },
        );
        token
    }

    pub(crate) fn revoke_connected_app_token(&mut self, access_token: &str) {
        let record = keys::unverified_claims(access_token)
            .and_then(|claims| claims.get("jti")?.as_str().map(str::to_owned))
            .and_then(|jti| self.access_tokens.get_mut(&jti));
        match record {
            Some(record) => record.revoked = true,
            None => panic!(
                "StytchEmulator::revoke_connected_app_token: not an access token minted by this emulator"
            ),
        }
    }

    /// `POST /v1/oauth2/introspect` (`project_id` `None`) and
    /// `POST /v1/public/{project_id}/oauth2/introspect`.
    pub(crate) fn introspect(
        &self,
        project_id: Option<&str>,
        request: &OAuthRequest,
        now: SystemTime,
    ) -> Result<Value, ApiError> {
        let (id, secret) = request.client_credentials()?;
        let project_ok = project_id.is_none_or(|p| p == self.config.project_id);
        let app = self.connected_apps.get(id);
        if !project_ok || !app.is_some_and(|a| a.client.authenticates(secret)) {
            return Err(invalid_client());
        }
        let token = request
            .param("token")?
            .ok_or_else(|| invalid_request("token is required."))?;
        let mut fields = self.active_claims(token, now).unwrap_or_default();
        fields.insert("active".into(), json!(!fields.is_empty()));
        Ok(wire::success(self.config.env, fields))
    }

    /// The claims of a live Connected-App access token (without `jti`, with
    /// `token_type`), or `None` for any other token.
    fn active_claims(&self, token: &str, now: SystemTime) -> Option<Map<String, Value>> {
        let mut claims = self
            .keys
            .verify(token, &self.config.issuer, &self.config.project_id)
            .ok()?;
        let record = self.access_tokens.get(claims.get("jti")?.as_str()?)?;
        let now = crate::clock::unix_seconds(now);
        let started = claims.get("nbf").and_then(Value::as_u64).unwrap_or(0) <= now;
        if record.revoked || record.expires_at <= now || !started {
            return None;
        }
        claims.remove("jti");
        claims.insert("token_type".into(), json!("access_token"));
        Some(claims)
    }
}
