//! The client against the emulator, through every endpoint, success and error.

use std::time::Duration;

use http::StatusCode;

use super::wire::{AuthenticateParams, AuthorizationCheck, SessionCredential};
use super::{ClientError, ClientSettings, Endpoint, StytchClient};
use crate::rbac::{Policy, Role};
use crate::testing::{Endpoint as EmuEndpoint, Fault, StytchEmulator};

fn client_for(emu: &StytchEmulator, secret: &str, timeout: Duration) -> StytchClient {
    let endpoint = Endpoint::resolve(emu.project_id(), Some(&emu.base_url())).unwrap();
    let settings = ClientSettings {
        connect_timeout: timeout,
        request_timeout: timeout,
    };
    StytchClient::new(emu.project_id(), secret, &endpoint, &settings).unwrap()
}

fn client(emu: &StytchEmulator) -> StytchClient {
    client_for(emu, emu.secret(), Duration::from_secs(5))
}

fn params(credential: SessionCredential) -> AuthenticateParams {
    AuthenticateParams {
        credential,
        session_duration_minutes: None,
        authorization_check: None,
    }
}

#[tokio::test]
async fn authenticate_by_token_and_jwt() {
    let emu = StytchEmulator::start().await;
    let org = emu.create_organization("acme");
    let member = emu.create_member(&org, "a@acme.test", &["editor"]);
    let session = emu.create_session(&member);
    let c = client(&emu);

    let by_token = c
        .authenticate(&params(SessionCredential::Token(
            session.session_token.clone(),
        )))
        .await
        .unwrap();
    assert_eq!(by_token.member_session.member_id, member);
    assert_eq!(by_token.member_session.organization_id, org);
    assert_eq!(by_token.member_session.organization_slug, "acme");
    assert_eq!(
        by_token.member_session.roles,
        vec!["stytch_member", "editor"]
    );
    assert_eq!(by_token.session_token, session.session_token);
    assert!(by_token.verdict.is_none());

    let by_jwt = c
        .authenticate(&params(SessionCredential::Jwt(session.session_jwt.clone())))
        .await
        .unwrap();
    assert_eq!(
        by_jwt.member_session.member_session_id,
        session.member_session_id
    );
    assert_eq!(emu.requests(EmuEndpoint::Authenticate), 2);
}

#[tokio::test]
async fn authenticate_with_duration_and_authorization_check() {
    let emu = StytchEmulator::start().await;
    emu.set_policy(Policy::new().role(Role::new("editor").allow("document", ["read"])));
    let org = emu.create_organization("acme");
    let member = emu.create_member(&org, "a@acme.test", &["editor"]);
    let session = emu.create_session(&member);
    let c = client(&emu);
    let check = |org: &str, action: &str| AuthorizationCheck {
        organization_id: org.into(),
        resource_id: "document".into(),
        action: action.into(),
    };

    let mut p = params(SessionCredential::Token(session.session_token.clone()));
    p.session_duration_minutes = Some(120);
    p.authorization_check = Some(check(&org, "read"));
    let ok = c.authenticate(&p).await.unwrap();
    let verdict = ok.verdict.unwrap();
    assert!(verdict.authorized);
    assert_eq!(verdict.granting_roles, vec!["editor"]);
    let now = crate::Clock::now(&emu.clock());
    let extended = ok.member_session.expires_at.duration_since(now).unwrap();
    assert_eq!(extended, Duration::from_secs(120 * 60));

    p.authorization_check = Some(check(&org, "delete"));
    let err = c.authenticate(&p).await.unwrap_err();
    assert_eq!(
        (err.status(), err.error_type()),
        (
            Some(StatusCode::FORBIDDEN),
            Some("session_authorization_error")
        )
    );

    p.authorization_check = Some(check("organization-test-other", "read"));
    let err = c.authenticate(&p).await.unwrap_err();
    assert_eq!(
        (err.status(), err.error_type()),
        (
            Some(StatusCode::FORBIDDEN),
            Some("session_authorization_tenancy_error")
        )
    );
}

#[tokio::test]
async fn authenticate_errors() {
    let emu = StytchEmulator::start().await;
    let org = emu.create_organization("acme");
    let member = emu.create_member(&org, "a@acme.test", &[]);
    let session = emu.create_session(&member);

    let err = client(&emu)
        .authenticate(&params(SessionCredential::Token("nope".into())))
        .await
        .unwrap_err();
    let ClientError::Api(api) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (api.status, api.error_type.as_str()),
        (StatusCode::NOT_FOUND, "session_not_found")
    );
    assert!(api.request_id.as_deref().is_some_and(|r| !r.is_empty()));
    assert!(!err.is_unavailable());

    let bad_secret = client_for(&emu, "wrong", Duration::from_secs(5));
    let err = bad_secret
        .authenticate(&params(SessionCredential::Token(
            session.session_token.clone(),
        )))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));

    emu.revoke_session(&session.member_session_id);
    let err = client(&emu)
        .authenticate(&params(SessionCredential::Token(session.session_token)))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), Some("session_not_found"));
}

#[tokio::test]
async fn faults_are_distinct_errors() {
    let emu = StytchEmulator::start().await;
    // Faults that answer at once, with a timeout no loaded machine reaches; the
    // delay, with a short one.
    let c = client(&emu);
    let p = params(SessionCredential::Token("t".into()));

    emu.inject_fault(
        EmuEndpoint::Authenticate,
        Fault::Status {
            status: 500,
            times: 1,
        },
    );
    let err = c.authenticate(&p).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api(a) if a.status == 500) && err.is_unavailable(),
        "{err:?}"
    );

    emu.inject_fault(
        EmuEndpoint::Authenticate,
        Fault::Status {
            status: 429,
            times: 1,
        },
    );
    let ClientError::Api(api) = c.authenticate(&p).await.unwrap_err() else {
        panic!()
    };
    assert_eq!(api.retry_after, Some(Duration::from_secs(1)));

    emu.inject_fault(EmuEndpoint::Authenticate, Fault::Garbage { times: 1 });
    let err = c.authenticate(&p).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::UnexpectedResponse {
                status: StatusCode::OK,
                ..
            }
        ),
        "{err:?}"
    );

    emu.inject_fault(
        EmuEndpoint::Authenticate,
        Fault::Body {
            status: 502,
            body: "<html>bad gateway".into(),
            times: 1,
        },
    );
    let err = c.authenticate(&p).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::UnexpectedResponse {
                status: StatusCode::BAD_GATEWAY,
                ..
            }
        ),
        "{err:?}"
    );

    emu.inject_fault(
        EmuEndpoint::Authenticate,
        Fault::Delay(Duration::from_secs(5)),
    );
    let short = client_for(&emu, emu.secret(), Duration::from_millis(300));
    let started = std::time::Instant::now();
    let err = short.authenticate(&p).await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the timeout bounds the call"
    );
    emu.clear_faults();

    emu.set_refusing_connections(true);
    let err = c.authenticate(&p).await.unwrap_err();
    assert!(matches!(err, ClientError::Transport { .. }), "{err:?}");
    assert!(err.is_unavailable());
}

#[tokio::test]
async fn jwks_policy_org_policy_and_revoke() {
    let emu = StytchEmulator::start().await;
    emu.set_policy(Policy::new().role(Role::new("viewer").allow("document", ["read"])));
    let org = emu.create_organization("acme");
    emu.set_organization_roles(&org, vec![Role::new("auditor").allow("report", ["read"])]);
    let member = emu.create_member(&org, "a@acme.test", &[]);
    let session = emu.create_session(&member);
    let c = client(&emu);

    let jwks = c.jwks().await.unwrap();
    assert_eq!(jwks.keys.len(), 1);
    assert_eq!(
        jwks.keys[0].kid.as_deref(),
        Some(emu.signing_kid().as_str())
    );
    let (set, skipped) = crate::jwt::keys::KeySet::from_jwks(&jwks);
    assert_eq!((set.len(), skipped), (1, 0));

    // The JWKS is fetched without credentials: a wrong secret still gets it.
    assert!(
        client_for(&emu, "wrong", Duration::from_secs(5))
            .jwks()
            .await
            .is_ok()
    );

    let policy = c.policy().await.unwrap().policy;
    assert!(policy.roles.iter().any(|r| r.role_id == "viewer"));
    let org_policy = c.org_policy(&org).await.unwrap().org_policy;
    assert_eq!(org_policy.roles[0].role_id, "auditor");
    let err = c.org_policy("organization-test-unknown").await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));

    c.revoke(&session.member_session_id).await.unwrap();
    assert!(emu.session(&session.member_session_id).unwrap().revoked);
    let err = c.revoke(&session.member_session_id).await.unwrap_err();
    assert_eq!(err.error_type(), Some("session_not_found"));
    assert_eq!(emu.requests(EmuEndpoint::Revoke), 2);
}
