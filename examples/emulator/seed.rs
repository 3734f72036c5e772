//! What the emulator example seeds, and the credentials it prints: shell `export`
//! lines and one JSON line. Shared with the tests (`tests/emulator_example.rs`,
//! `tests/node_sdk.rs`).

use std::time::Duration;

use axum_stytch::testing::{
    ConnectedApp, M2mClient, Policy, Role, SessionOptions, SessionTokens, StytchEmulator,
};
use serde_json::{Value, json};

/// How long the seeded sessions last: a day, for a test run or a day's work. Their
/// JWTs, like Stytch's, expire after 5 minutes; the SDKs then authenticate the
/// session remotely and get a fresh one.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// The scopes of the seeded M2M client.
pub const M2M_SCOPES: [&str; 2] = ["read:documents", "write:documents"];

/// The scopes of the seeded Connected App's access token (for the admin).
pub const CONNECTED_APP_SCOPES: [&str; 2] = ["openid", "read:documents"];

/// The RBAC policy: viewers read documents, admins do anything with them.
pub fn policy() -> Policy {
    Policy::new()
        .role(Role::new("viewer").allow("document", ["read"]))
        .role(Role::new("admin").allow("document", ["*"]))
}

/// A seeded member and one of its sessions.
pub struct SeededMember {
    pub member_id: String,
    pub email: &'static str,
    pub session: SessionTokens,
}

/// Everything seeded, with the project's credentials.
pub struct Seeded {
    pub base_url: String,
    pub project_id: String,
    pub secret: String,
    pub organization_id: String,
    pub admin: SeededMember,
    pub viewer: SeededMember,
    pub m2m_client: M2mClient,
    pub connected_app: ConnectedApp,
    /// An access token of the Connected App acting for the admin.
    pub connected_app_token: String,
}

/// Seeds `emulator`: the policy, the organization `acme` with an admin and a
/// viewer, a session each, an M2M client and a Connected App with a token.
pub fn seed(emulator: &StytchEmulator) -> Seeded {
    emulator.set_policy(policy());
    let organization_id = emulator.create_organization("acme");
    let member = |email: &'static str, role: &str| {
        let member_id = emulator.create_member(&organization_id, email, &[role]);
        let session = emulator
            .create_session_with(&member_id, SessionOptions::new().duration(SESSION_LIFETIME));
        SeededMember {
            member_id,
            email,
            session,
        }
    };
    let admin = member("admin@acme.test", "admin");
    let viewer = member("viewer@acme.test", "viewer");
    let m2m_client = emulator.create_m2m_client(&M2M_SCOPES);
    let connected_app = emulator.create_connected_app();
    let connected_app_token = emulator.mint_connected_app_token(
        &connected_app.client_id,
        &admin.member_id,
        &CONNECTED_APP_SCOPES,
    );
    Seeded {
        base_url: emulator.base_url(),
        project_id: emulator.project_id().to_owned(),
        secret: emulator.secret().to_owned(),
        organization_id,
        admin,
        viewer,
        m2m_client,
        connected_app,
        connected_app_token,
    }
}

impl Seeded {
    /// The environment variables a client reads: `STYTCH_PROJECT_ID`,
    /// `STYTCH_SECRET` and `STYTCH_BASE_URL` (what `StytchAuth::from_env` reads
    /// too), then the seeded ids and credentials.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let member = |prefix: [&'static str; 3], m: &SeededMember| {
            [
                (prefix[0], m.member_id.clone()),
                (prefix[1], m.session.session_token.clone()),
                (prefix[2], m.session.session_jwt.clone()),
            ]
        };
        let mut env = vec![
            ("STYTCH_PROJECT_ID", self.project_id.clone()),
            ("STYTCH_SECRET", self.secret.clone()),
            ("STYTCH_BASE_URL", self.base_url.clone()),
            ("STYTCH_ORGANIZATION_ID", self.organization_id.clone()),
        ];
        env.extend(member(
            [
                "STYTCH_ADMIN_MEMBER_ID",
                "STYTCH_ADMIN_SESSION_TOKEN",
                "STYTCH_ADMIN_SESSION_JWT",
            ],
            &self.admin,
        ));
        env.extend(member(
            [
                "STYTCH_VIEWER_MEMBER_ID",
                "STYTCH_VIEWER_SESSION_TOKEN",
                "STYTCH_VIEWER_SESSION_JWT",
            ],
            &self.viewer,
        ));
        env.extend([
            ("STYTCH_M2M_CLIENT_ID", self.m2m_client.client_id.clone()),
            (
                "STYTCH_M2M_CLIENT_SECRET",
                self.m2m_client.client_secret.clone(),
            ),
            (
                "STYTCH_CONNECTED_APP_CLIENT_ID",
                self.connected_app.client_id.clone(),
            ),
            (
                "STYTCH_CONNECTED_APP_CLIENT_SECRET",
                self.connected_app.client_secret.clone(),
            ),
            (
                "STYTCH_CONNECTED_APP_ACCESS_TOKEN",
                self.connected_app_token.clone(),
            ),
        ]);
        env
    }

    /// `export NAME='value'` lines, one per [`env`](Self::env) variable.
    pub fn shell_exports(&self) -> String {
        self.env()
            .iter()
            .map(|(name, value)| format!("export {name}={}\n", shell_quote(value)))
            .collect()
    }

    /// The same credentials as one JSON object.
    pub fn json(&self) -> Value {
        let member = |m: &SeededMember| {
            json!({
                "member_id": m.member_id,
                "email": m.email,
                "member_session_id": m.session.member_session_id,
                "session_token": m.session.session_token,
                "session_jwt": m.session.session_jwt,
            })
        };
        json!({
            "base_url": self.base_url,
            "project_id": self.project_id,
            "secret": self.secret,
            "organization_id": self.organization_id,
            "admin": member(&self.admin),
            "viewer": member(&self.viewer),
            "m2m_client": {
                "client_id": self.m2m_client.client_id,
                "client_secret": self.m2m_client.client_secret,
                "scopes": M2M_SCOPES,
            },
            "connected_app": {
                "client_id": self.connected_app.client_id,
                "client_secret": self.connected_app.client_secret,
                "access_token": self.connected_app_token,
                "scopes": CONNECTED_APP_SCOPES,
            },
        })
    }
}

/// `value` in single quotes for a POSIX shell.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}
