//! `POST /v1/public/{project_id}/oauth2/token` (the M2M client-credentials grant),
//! and the M2M operations of the test handle: create a client, mint its token.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::Project;
use crate::testing::clients::{M2mClient, M2mClientOptions};
use crate::testing::model::{M2mClientRecord, dedup};
use crate::testing::oauth::{OAuthRequest, invalid_client, invalid_request};
use crate::testing::wire::{self, ApiError};

/// Lifetime of an M2M access token, in seconds (`expires_in`, `exp - iat`).
const M2M_TOKEN_SECONDS: u64 = 3600;

impl Project {
    pub(crate) fn create_m2m_client(
        &mut self,
        scopes: &[&str],
        options: M2mClientOptions,
    ) -> M2mClient {
        let record = M2mClientRecord {
            client: self.new_client("m2m-client", options.custom_claims),
            scopes: dedup(scopes.iter().map(|s| (*s).to_owned())),
        };
        let client = M2mClient {
            client_id: record.client.id.clone(),
            client_secret: record.client.secret.clone(),
        };
        self.m2m_clients.insert(client.client_id.clone(), record);
        client
    }

    pub(crate) fn mint_m2m_token(
        &self,
        client_id: &str,
        scopes: Option<&[&str]>,
        now: SystemTime,
    ) -> String {
        let client = self.m2m_clients.get(client_id).unwrap_or_else(|| {
            panic!("StytchEmulator::mint_m2m_token: unknown M2M client_id {client_id:?}")
        });
        let requested = scopes.map(|s| s.join(" ")).unwrap_or_default();
        let scope = granted_scope(client, &requested).unwrap_or_else(|_| {
            panic!(
                "StytchEmulator::mint_m2m_token: {client_id:?} was not given every scope of {requested:?}"
            )
        });
        self.mint_m2m_for(client, &scope, now)
    }

    /// `POST /v1/public/{project_id}/oauth2/token`.
    pub(crate) fn oauth_token(
        &self,
        project_id: &str,
        request: &OAuthRequest,
        now: SystemTime,
    ) -> Result<Value, ApiError> {
        let (id, secret) = request.client_credentials()?;
        let client = self
            .m2m_clients
            .get(id)
            .filter(|c| c.client.authenticates(secret) && project_id == self.config.project_id)
            .ok_or_else(invalid_client)?;
        match request.param("grant_type")? {
            None => return Err(invalid_request("grant_type is required.")),
            Some("client_credentials") => {}
            Some(_) => {
                return Err(ApiError::oauth(
                    400,
                    "unsupported_grant_type",
                    "The authorization grant type is not supported by the authorization server.",
                ));
            }
        }
        let scope = granted_scope(client, request.param("scope")?.unwrap_or_default())?;
        let mut fields = Map::new();
        fields.insert(
            "access_token".into(),
            json!(self.mint_m2m_for(client, &scope, now)),
        );
        fields.insert("token_type".into(), json!("bearer"));
        fields.insert("expires_in".into(), json!(M2M_TOKEN_SECONDS));
        Ok(wire::success(self.config.env, fields))
    }

    fn mint_m2m_for(&self, client: &M2mClientRecord, scope: &str, now: SystemTime) -> String {
        let iat = crate::clock::unix_seconds(now);
        // Custom claims first, so the registered claims always win.
        let mut claims = client.client.custom_claims.clone();
        claims.insert("aud".into(), json!([self.config.project_id]));
        claims.insert("exp".into(), json!(iat + M2M_TOKEN_SECONDS));
        claims.insert("iat".into(), json!(iat));
        claims.insert("iss".into(), json!(self.config.issuer));
        claims.insert("nbf".into(), json!(iat));
        claims.insert("scope".into(), json!(scope));
        claims.insert("sub".into(), json!(client.client.id));
        self.keys.mint(&claims)
    }
}

/// The `scope` claim for a request of `requested` (space-delimited): all the
/// client's scopes when none is asked for, else the asked ones (each given to the
/// client), without repeats.
fn granted_scope(client: &M2mClientRecord, requested: &str) -> Result<String, ApiError> {
    let asked: Vec<&str> = requested.split_whitespace().collect();
    if asked.is_empty() {
        return Ok(client.scopes.join(" "));
    }
    if let Some(missing) = asked
        .iter()
        .find(|s| !client.scopes.iter().any(|c| c == *s))
    {
        return Err(ApiError::oauth(
            400,
            "invalid_scope",
            format!("The requested scope {missing:?} was not granted to the client."),
        ));
    }
    Ok(dedup(asked.into_iter().map(str::to_owned)).join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::model::ClientRecord;

    #[test]
    fn scopes_default_to_all_and_must_be_granted() {
        let client = M2mClientRecord {
            client: ClientRecord::new("m2m-client", "test", Map::new()),
            scopes: vec!["read:users".into(), "write:users".into()],
        };
        assert_eq!(
            granted_scope(&client, " ").unwrap(),
            "read:users write:users"
        );
        assert_eq!(
            granted_scope(&client, "write:users  read:users write:users").unwrap(),
            "write:users read:users"
        );
        let err = granted_scope(&client, "read:users read:*").unwrap_err();
        assert_eq!(
            (err.status, err.error_type, err.oauth),
            (400, "invalid_scope", true)
        );
    }
}
