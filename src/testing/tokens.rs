//! The test handle's machine-token operations: M2M clients and their
//! client-credentials tokens, Connected Apps and their access tokens.

use super::clients::{ConnectedApp, ConnectedAppOptions, M2mClient, M2mClientOptions};
use super::emulator::StytchEmulator;

impl StytchEmulator {
    /// Creates an M2M client given these scopes (free-form strings such as
    /// `read:users`) and returns its `m2m-client-test-<uuid>` id and secret.
    ///
    /// The client gets access tokens from
    /// `POST /v1/public/{project_id}/oauth2/token` (see the module docs), or
    /// without HTTP from [`mint_m2m_token`](Self::mint_m2m_token).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use axum_stytch::testing::StytchEmulator;
    /// use serde_json::Value;
    ///
    /// let emulator = StytchEmulator::start().await;
    /// let client = emulator.create_m2m_client(&["read:users", "write:users"]);
    /// let response = reqwest::Client::new()
    ///     .post(format!(
    ///         "{}/v1/public/{}/oauth2/token",
    ///         emulator.base_url(),
    ///         emulator.project_id()
    ///     ))
    ///     .basic_auth(&client.client_id, Some(&client.client_secret))
    ///     .header("content-type", "application/x-www-form-urlencoded")
    ///     .body("grant_type=client_credentials&scope=read%3Ausers")
    ///     .send()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(response.status(), 200);
    /// let body: Value = response.json().await.unwrap();
    /// assert_eq!(body["token_type"], "bearer");
    /// assert_eq!(body["expires_in"], 3600);
    /// # }
    /// ```
    pub fn create_m2m_client(&self, scopes: &[&str]) -> M2mClient {
        self.create_m2m_client_with(scopes, M2mClientOptions::default())
    }

    /// Creates an M2M client configured by `options` (custom claims for its
    /// tokens). See [`create_m2m_client`](Self::create_m2m_client).
    pub fn create_m2m_client_with(&self, scopes: &[&str], options: M2mClientOptions) -> M2mClient {
        self.shared().project().create_m2m_client(scopes, options)
    }

    /// Mints an M2M access token as the token endpoint would, without HTTP:
    /// issued at the emulator's current time, `exp = iat + 3600`, signed with the
    /// current key, `scope` = `scopes` (all the client's scopes when `None` or
    /// empty).
    ///
    /// # Panics
    ///
    /// If `client_id` is unknown, or a scope was not given to the client (sign
    /// such claims with [`sign_claims`](Self::sign_claims)).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use axum_stytch::testing::StytchEmulator;
    ///
    /// let emulator = StytchEmulator::start().await;
    /// let client = emulator.create_m2m_client(&["read:users", "write:users"]);
    /// let token = emulator.mint_m2m_token(&client.client_id, Some(&["read:users"]));
    /// assert!(token.starts_with("eyJ"));
    /// # }
    /// ```
    pub fn mint_m2m_token(&self, client_id: &str, scopes: Option<&[&str]>) -> String {
        let now = self.now();
        self.shared()
            .project()
            .mint_m2m_token(client_id, scopes, now)
    }

    /// Creates a Connected App whose access tokens live 60 minutes, and returns
    /// its `connected-app-test-<uuid>` id and secret (the credentials of token
    /// introspection).
    pub fn create_connected_app(&self) -> ConnectedApp {
        self.create_connected_app_with(ConnectedAppOptions::default())
    }

    /// Creates a Connected App configured by `options` (access-token lifetime,
    /// custom claims).
    pub fn create_connected_app_with(&self, options: ConnectedAppOptions) -> ConnectedApp {
        self.shared().project().create_connected_app(options)
    }

    /// Mints the access token Stytch would issue to the app `client_id` acting for
    /// `member_id` with the granted `scopes`, as at the end of an
    /// authorization-code flow (not emulated): `sub` the member, `client_id`, a
    /// fresh `jti`, `scope`, the member's organization in
    /// `https://stytch.com/organization`, `aud` `[project_id]`, the emulator's
    /// issuer, issued now for the app's lifetime. Introspection answers it active
    /// until it expires or [`revoke_connected_app_token`](Self::revoke_connected_app_token).
    ///
    /// Consent and the RBAC policy are not consulted: any scope strings are granted.
    ///
    /// # Panics
    ///
    /// If `client_id` or `member_id` is unknown.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use axum_stytch::testing::StytchEmulator;
    /// use serde_json::Value;
    ///
    /// let emulator = StytchEmulator::start().await;
    /// let org = emulator.create_organization("acme");
    /// let member = emulator.create_member(&org, "ada@acme.test", &[]);
    /// let app = emulator.create_connected_app();
    /// let token = emulator.mint_connected_app_token(&app.client_id, &member, &["openid", "read:docs"]);
    ///
    /// let introspect = || async {
    ///     // Ids, secrets and JWTs need no escaping in a form.
    ///     let form = format!(
    ///         "token={token}&client_id={}&client_secret={}",
    ///         app.client_id, app.client_secret
    ///     );
    ///     let response = reqwest::Client::new()
    ///         .post(format!("{}/v1/oauth2/introspect", emulator.base_url()))
    ///         .header("content-type", "application/x-www-form-urlencoded")
    ///         .body(form)
    ///         .send()
    ///         .await
    ///         .unwrap();
    ///     response.json::<Value>().await.unwrap()
    /// };
    /// let active = introspect().await;
    /// assert_eq!(active["active"], true);
    /// assert_eq!(active["sub"], member);
    /// assert_eq!(active["https://stytch.com/organization"]["slug"], "acme");
    ///
    /// emulator.revoke_connected_app_token(&token);
    /// assert_eq!(introspect().await["active"], false);
    /// # }
    /// ```
    pub fn mint_connected_app_token(
        &self,
        client_id: &str,
        member_id: &str,
        scopes: &[&str],
    ) -> String {
        let now = self.now();
        self.shared()
            .project()
            .mint_connected_app_token(client_id, member_id, scopes, now)
    }

    /// Revokes a Connected-App access token: introspection answers
    /// `{"active":false}` from now on. The JWT still verifies locally until its
    /// `exp`, as Stytch's do.
    ///
    /// # Panics
    ///
    /// If `access_token` was not minted by
    /// [`mint_connected_app_token`](Self::mint_connected_app_token) on this emulator.
    pub fn revoke_connected_app_token(&self, access_token: &str) {
        self.shared()
            .project()
            .revoke_connected_app_token(access_token);
    }
}
