//! The project domain's authorization-server metadata:
//! `GET /.well-known/openid-configuration`, `GET /.well-known/oauth-authorization-server`
//! and `GET /v1/public/{project_id}/.well-known/openid-configuration`.

use serde_json::{Map, Value, json};

use super::Project;
use crate::testing::wire::{self, ApiError};

impl Project {
    /// The metadata document: Stytch's documented example with this emulator's
    /// origin, its JWT issuer as `issuer`, and `code_challenge_methods_supported`.
    /// `project_id` is the one named in the path, if any.
    pub(crate) fn discovery(&self, project_id: Option<&str>) -> Result<Value, ApiError> {
        if project_id.is_some_and(|p| p != self.config.project_id) {
            return Err(ApiError::project_not_found());
        }
        let origin = &self.config.origin;
        let fields: Map<String, Value> = [
            (
                "authorization_endpoint",
                json!(format!("{origin}/oauth2/authorize")),
            ),
            ("code_challenge_methods_supported", json!(["S256"])),
            ("grant_types_supported", json!(["authorization_code"])),
            ("id_token_signing_alg_values_supported", json!(["RS256"])),
            ("issuer", json!(self.config.issuer)),
            ("jwks_uri", json!(format!("{origin}/.well-known/jwks.json"))),
            ("response_types_supported", json!(["code"])),
            (
                "scopes_supported",
                json!(["openid", "profile", "email", "phone", "offline_access"]),
            ),
            ("subject_types_supported", json!(["public"])),
            ("token_endpoint", json!(format!("{origin}/v1/oauth2/token"))),
            (
                "token_endpoint_auth_methods_supported",
                json!(["client_secret_basic", "client_secret_post"]),
            ),
            (
                "userinfo_endpoint",
                json!(format!("{origin}/v1/oauth2/userinfo")),
            ),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
        Ok(wire::success(self.config.env, fields))
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::testing::model::Config;

    #[test]
    fn the_issuer_is_the_jwt_issuer_and_urls_use_the_origin() {
        let config = Config {
            env: "test",
            project_id: "project-test-x".into(),
            secret: "secret".into(),
            issuer: "http://127.0.0.1:9".into(),
            origin: "http://127.0.0.1:9".into(),
        };
        let project = Project::new(config, SystemTime::now());
        let doc = project.discovery(None).unwrap();
        assert_eq!(doc["issuer"], "http://127.0.0.1:9");
        assert_eq!(doc["jwks_uri"], "http://127.0.0.1:9/.well-known/jwks.json");
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(doc["status_code"], 200);
        assert_eq!(
            project.discovery(Some("project-test-x")).unwrap()["issuer"],
            doc["issuer"]
        );
        let err = project.discovery(Some("project-test-y")).unwrap_err();
        assert_eq!((err.status, err.error_type), (404, "project_not_found"));
    }
}
