//! Wire compatibility: the official `stytch` crate (v11), pointed at the emulator,
//! parses every answer the middleware relies on, and gets Stytch's error answers as
//! `stytch::Error::Response` (never as a decode error).
//!
//! If these pass, the emulator speaks the same JSON as Stytch as far as the
//! official Rust SDK can tell, so the middleware's tests against it mean something.

mod common;

use std::fmt::Debug;
use std::time::Duration;

use axum_stytch::testing::{Endpoint, SessionTokens, StytchEmulator};
use axum_stytch::testing::{Policy, Resource, Role};
use common::{app, cookies, fixture, get_with};
use http::StatusCode;
use stytch::b2b::rbac_organizations::GetOrgPolicyRequest;
use stytch::b2b::sessions::{
    AuthenticateRequest, AuthorizationCheck, GetJWKSRequest, RevokeRequest,
};

/// The official B2B client for `emu`, authenticating with `secret`.
fn client_with_secret(emu: &StytchEmulator, secret: &str) -> stytch::b2b::client::Client {
    // `reqwest::Url` is inferred from `new_with_base_url`'s parameter.
    let http = stytch::client::Client::new_with_base_url(
        emu.project_id(),
        secret,
        format!("{}/", emu.base_url())
            .parse()
            .expect("emulator base URL"),
        stytch::client::Vertical::B2B,
    )
    .expect("stytch client");
    stytch::b2b::client::Client::new_with_http_client(http.clone(), http)
}

fn client(emu: &StytchEmulator) -> stytch::b2b::client::Client {
    client_with_secret(emu, emu.secret())
}

fn by_token(tokens: &SessionTokens) -> AuthenticateRequest {
    AuthenticateRequest {
        session_token: Some(tokens.session_token.clone()),
        ..Default::default()
    }
}

fn check(organization_id: &str, resource_id: &str, action: &str) -> AuthorizationCheck {
    AuthorizationCheck {
        organization_id: organization_id.to_owned(),
        resource_id: resource_id.to_owned(),
        action: action.to_owned(),
    }
}

/// The call failed with a Stytch error body carrying `status` and `error_type`
/// (and every other field `stytch::ErrorResponse` requires).
#[track_caller]
fn assert_stytch_error<T: Debug>(result: stytch::Result<T>, status: u16, error_type: &str) {
    match result {
        Err(stytch::Error::Response(e)) => {
            assert_eq!(
                e.status_code,
                StatusCode::from_u16(status).unwrap(),
                "{e:?}"
            );
            assert_eq!(e.error_type, error_type, "{e:?}");
            assert!(!e.request_id.is_empty(), "{e:?}");
            assert!(!e.error_message.is_empty(), "{e:?}");
            assert!(!e.error_url.is_empty(), "{e:?}");
        }
        Err(other) => panic!("expected Error::Response({status} {error_type}), got {other:?}"),
        Ok(ok) => panic!("expected Error::Response({status} {error_type}), got Ok({ok:?})"),
    }
}

fn policy() -> Policy {
    Policy::new()
        .role(Role::new("viewer").allow("document", ["read"]))
        .role(
            Role::new("editor")
                .allow("document", ["read", "write"])
                .allow("comment", ["create"]),
        )
        .resource(Resource::new(
            "document",
            ["create", "read", "write", "delete"],
        ))
        .resource(Resource::new("comment", ["create"]))
}

#[tokio::test]
async fn authenticate_by_token_parses_with_and_without_authorization_check() {
    let f = fixture().await;
    f.emu.set_policy(policy());
    let stytch = client(&f.emu);

    let res = stytch
        .sessions
        .authenticate(by_token(&f.session))
        .await
        .expect("authenticate by token");
    assert_eq!(res.status_code, StatusCode::OK);
    assert!(!res.request_id.is_empty());
    assert!(res.verdict.is_none());
    let s = &res.member_session;
    assert_eq!(s.member_session_id, f.session.member_session_id);
    assert_eq!(s.member_id, f.member);
    assert_eq!(s.organization_id, f.org);
    assert_eq!(s.organization_slug, "acme");
    assert_eq!(s.roles, ["stytch_member", "editor"]);
    assert!(s.started_at <= s.last_accessed_at && s.last_accessed_at < s.expires_at);
    assert_eq!(s.authentication_factors.len(), 1);
    assert_eq!(res.session_token, f.session.session_token);
    assert_eq!(res.session_jwt.split('.').count(), 3);
    assert_eq!(res.member.member_id, f.member);
    assert_eq!(res.member.organization_id, f.org);
    assert_eq!(res.member.email_address, "ada@acme.test");
    assert_eq!(res.organization.organization_id, f.org);
    assert_eq!(res.organization.organization_slug, "acme");

    // With an authorization_check that passes: the verdict names every granting role.
    f.emu.set_member_roles(&f.member, &["viewer", "editor"]);
    let res = stytch
        .sessions
        .authenticate(AuthenticateRequest {
            authorization_check: Some(check(&f.org, "document", "read")),
            session_duration_minutes: Some(60),
            ..by_token(&f.session)
        })
        .await
        .expect("authenticate with a passing authorization_check");
    let verdict = res.verdict.expect("verdict");
    assert!(verdict.authorized);
    assert_eq!(verdict.granting_roles, ["viewer", "editor"]);
    assert_eq!(
        res.member_session.roles,
        ["stytch_member", "viewer", "editor"]
    );
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 2);
}

#[tokio::test]
async fn authenticate_by_jwt_parses_also_when_the_jwt_has_expired() {
    let f = fixture().await;
    let stytch = client(&f.emu);

    let res = stytch
        .sessions
        .authenticate(AuthenticateRequest {
            session_jwt: Some(f.session.session_jwt.clone()),
            ..Default::default()
        })
        .await
        .expect("authenticate by JWT");
    assert_eq!(res.member_session.member_id, f.member);
    assert_eq!(res.session_token, f.session.session_token);

    // Ten minutes later the JWT is expired, the session (60 min) is not.
    f.emu.clock().advance(Duration::from_secs(600));
    let res = stytch
        .sessions
        .authenticate(AuthenticateRequest {
            session_jwt: Some(f.session.session_jwt.clone()),
            ..Default::default()
        })
        .await
        .expect("authenticate by expired JWT");
    assert_ne!(res.session_jwt, f.session.session_jwt, "a fresh JWT");

    // What the official crate got back works as cookies for the middleware,
    // verified locally.
    let app = app(&f.auth);
    let jwks_before = f.emu.requests(Endpoint::Jwks);
    let authenticates = f.emu.requests(Endpoint::Authenticate);
    let r = get_with(&app, "/me", &cookies(Some(&res.session_jwt), None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, f.member);
    assert_eq!(f.emu.requests(Endpoint::Authenticate), authenticates);
    assert_eq!(f.emu.requests(Endpoint::Jwks), jwks_before + 1);
}

#[tokio::test]
async fn get_jwks_parses_every_field() {
    let f = fixture().await;
    let stytch = client(&f.emu);

    let res = stytch
        .sessions
        .get_jwks(GetJWKSRequest {
            project_id: f.emu.project_id().to_owned(),
        })
        .await
        .expect("get_jwks");
    assert_eq!(res.status_code, StatusCode::OK);
    assert_eq!(res.keys.len(), 1);
    let key = &res.keys[0];
    assert_eq!(key.kid, f.emu.signing_kid());
    assert_eq!(key.kty, "RSA");
    assert_eq!(key.alg, "RS256");
    assert_eq!(key.use_, "sig");
    assert!(!key.key_ops.is_empty());
    assert!(!key.n.is_empty() && !key.e.is_empty());
    assert!(!key.x5c.is_empty());
    assert!(!key.x5tS256.is_empty());

    // After a rotation both keys are served.
    let new_kid = f.emu.rotate_keys();
    let res = stytch
        .sessions
        .get_jwks(GetJWKSRequest {
            project_id: f.emu.project_id().to_owned(),
        })
        .await
        .expect("get_jwks after rotation");
    let kids: Vec<_> = res.keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids.len(), 2);
    assert!(kids.contains(&new_kid.as_str()));

    // Another project's JWKS: a Stytch error, not a decode error.
    assert_stytch_error(
        stytch
            .sessions
            .get_jwks(GetJWKSRequest {
                project_id: "project-test-00000000-0000-0000-0000-000000000000".into(),
            })
            .await,
        404,
        "project_not_found",
    );
    assert_eq!(f.emu.requests(Endpoint::Jwks), 3);
}

#[tokio::test]
async fn rbac_policy_parses_with_stytch_defaults() {
    let f = fixture().await;
    f.emu.set_policy(policy());
    let stytch = client(&f.emu);

    let res = stytch
        .rbac
        .policy(stytch::b2b::rbac::PolicyRequest {})
        .await
        .expect("rbac policy");
    assert_eq!(res.status_code, StatusCode::OK);
    let policy = res.policy.expect("policy present");
    let role = |id: &str| {
        policy
            .roles
            .iter()
            .find(|r| r.role_id == id)
            .unwrap_or_else(|| panic!("role {id} missing"))
    };
    let editor = role("editor");
    assert_eq!(editor.permissions.len(), 2);
    assert_eq!(editor.permissions[0].resource_id, "document");
    assert_eq!(editor.permissions[0].actions, ["read", "write"]);
    assert_eq!(role("viewer").permissions[0].actions, ["read"]);
    // Stytch's default roles and resources are kept.
    assert!(
        role("stytch_member")
            .permissions
            .iter()
            .any(|p| p.resource_id == "stytch.self")
    );
    role("stytch_admin");
    let resources: Vec<_> = policy
        .resources
        .iter()
        .map(|r| r.resource_id.as_str())
        .collect();
    for id in ["document", "comment", "stytch.self", "stytch.member"] {
        assert!(resources.contains(&id), "resource {id} in {resources:?}");
    }
    assert_eq!(f.emu.requests(Endpoint::Policy), 1);
}

#[tokio::test]
async fn organization_policy_parses() {
    let f = fixture().await;
    let other = f.emu.create_organization("globex");
    f.emu.set_organization_roles(
        &f.org,
        vec![Role::new("auditor").allow("report", ["read", "export"])],
    );
    let stytch = client(&f.emu);

    let res = stytch
        .rbac
        .organizations
        .get_org_policy(GetOrgPolicyRequest {
            organization_id: f.org.clone(),
        })
        .await
        .expect("get_org_policy");
    assert_eq!(res.status_code, StatusCode::OK);
    assert_eq!(res.org_policy.roles.len(), 1);
    let auditor = &res.org_policy.roles[0];
    assert_eq!(auditor.role_id, "auditor");
    assert_eq!(auditor.permissions[0].resource_id, "report");
    assert_eq!(auditor.permissions[0].actions, ["read", "export"]);

    // An organization without custom roles answers an empty list.
    let res = stytch
        .rbac
        .organizations
        .get_org_policy(GetOrgPolicyRequest {
            organization_id: other,
        })
        .await
        .expect("get_org_policy without custom roles");
    assert!(res.org_policy.roles.is_empty());

    // By slug, as Stytch allows.
    let res = stytch
        .rbac
        .organizations
        .get_org_policy(GetOrgPolicyRequest {
            organization_id: "acme".into(),
        })
        .await
        .expect("get_org_policy by slug");
    assert_eq!(res.org_policy.roles[0].role_id, "auditor");

    assert_stytch_error(
        stytch
            .rbac
            .organizations
            .get_org_policy(GetOrgPolicyRequest {
                organization_id: "organization-test-00000000-0000-0000-0000-000000000000".into(),
            })
            .await,
        404,
        "organization_not_found",
    );
    assert_eq!(f.emu.requests(Endpoint::OrganizationPolicy), 4);
}

#[tokio::test]
async fn revoke_parses_and_the_session_is_gone() {
    let f = fixture().await;
    let stytch = client(&f.emu);

    let res = stytch
        .sessions
        .revoke(RevokeRequest {
            member_session_id: Some(f.session.member_session_id.clone()),
            ..Default::default()
        })
        .await
        .expect("revoke");
    assert_eq!(res.status_code, StatusCode::OK);
    assert!(!res.request_id.is_empty());
    assert_eq!(f.emu.requests(Endpoint::Revoke), 1);

    assert_stytch_error(
        stytch.sessions.authenticate(by_token(&f.session)).await,
        404,
        "session_not_found",
    );
    assert_stytch_error(
        stytch
            .sessions
            .authenticate(AuthenticateRequest {
                session_jwt: Some(f.session.session_jwt.clone()),
                ..Default::default()
            })
            .await,
        404,
        "session_not_found",
    );
    // Revoking it again: gone.
    assert_stytch_error(
        stytch
            .sessions
            .revoke(RevokeRequest {
                member_session_id: Some(f.session.member_session_id.clone()),
                ..Default::default()
            })
            .await,
        404,
        "session_not_found",
    );

    // Revoking every session of a member.
    let second = f.emu.create_session(&f.member);
    stytch
        .sessions
        .revoke(RevokeRequest {
            member_id: Some(f.member.clone()),
            ..Default::default()
        })
        .await
        .expect("revoke by member_id");
    assert_stytch_error(
        stytch.sessions.authenticate(by_token(&second)).await,
        404,
        "session_not_found",
    );
}

#[tokio::test]
async fn authorization_check_failures_are_stytch_errors() {
    let f = fixture().await;
    f.emu.set_policy(policy());
    let other = f.emu.create_organization("globex");
    let stytch = client(&f.emu);

    // "editor" may not delete documents.
    assert_stytch_error(
        stytch
            .sessions
            .authenticate(AuthenticateRequest {
                authorization_check: Some(check(&f.org, "document", "delete")),
                ..by_token(&f.session)
            })
            .await,
        403,
        "session_authorization_error",
    );
    // Another organization, whatever the roles.
    assert_stytch_error(
        stytch
            .sessions
            .authenticate(AuthenticateRequest {
                authorization_check: Some(check(&other, "document", "read")),
                ..by_token(&f.session)
            })
            .await,
        403,
        "session_authorization_tenancy_error",
    );
    // Same through a JWT.
    assert_stytch_error(
        stytch
            .sessions
            .authenticate(AuthenticateRequest {
                session_jwt: Some(f.session.session_jwt.clone()),
                authorization_check: Some(check(&f.org, "document", "delete")),
                ..Default::default()
            })
            .await,
        403,
        "session_authorization_error",
    );
    // The session is untouched by a failed check.
    stytch
        .sessions
        .authenticate(by_token(&f.session))
        .await
        .expect("session still valid");
}

#[tokio::test]
async fn credential_and_request_errors_are_stytch_errors() {
    let f = fixture().await;
    let bad = client_with_secret(&f.emu, "secret-test-wrong-wrong-wrong-wrong");

    assert_stytch_error(
        bad.sessions.authenticate(by_token(&f.session)).await,
        401,
        "unauthorized_credentials",
    );
    assert_stytch_error(
        bad.rbac.policy(stytch::b2b::rbac::PolicyRequest {}).await,
        401,
        "unauthorized_credentials",
    );
    assert_stytch_error(
        bad.rbac
            .organizations
            .get_org_policy(GetOrgPolicyRequest {
                organization_id: f.org.clone(),
            })
            .await,
        401,
        "unauthorized_credentials",
    );
    assert_stytch_error(
        bad.sessions
            .revoke(RevokeRequest {
                member_session_id: Some(f.session.member_session_id.clone()),
                ..Default::default()
            })
            .await,
        401,
        "unauthorized_credentials",
    );
    // The bad secret revoked nothing.
    let stytch = client(&f.emu);
    stytch
        .sessions
        .authenticate(by_token(&f.session))
        .await
        .expect("session still valid");

    // Both credentials at once.
    assert_stytch_error(
        stytch
            .sessions
            .authenticate(AuthenticateRequest {
                session_token: Some(f.session.session_token.clone()),
                session_jwt: Some(f.session.session_jwt.clone()),
                ..Default::default()
            })
            .await,
        400,
        "too_many_session_arguments",
    );
    // An unknown token and a forged JWT.
    assert_stytch_error(
        stytch
            .sessions
            .authenticate(AuthenticateRequest {
                session_token: Some("x".repeat(44)),
                ..Default::default()
            })
            .await,
        404,
        "session_not_found",
    );
    let (signing_input, _) = f.session.session_jwt.rsplit_once('.').unwrap();
    assert_stytch_error(
        stytch
            .sessions
            .authenticate(AuthenticateRequest {
                session_jwt: Some(format!("{signing_input}.AAAA")),
                ..Default::default()
            })
            .await,
        401,
        "jwt_invalid",
    );
    // An out-of-range session duration.
    assert_stytch_error(
        stytch
            .sessions
            .authenticate(AuthenticateRequest {
                session_duration_minutes: Some(1),
                ..by_token(&f.session)
            })
            .await,
        400,
        "bad_request",
    );
}
