//! RBAC through the public API: `RequireAuthz`, `Authorized<P>`, `Verdict` and
//! `StytchAuth::authorize`, against the in-process Stytch emulator.
//!
//! Time is the emulator's `MockClock` (shared with the middleware); nothing here
//! sleeps to make time pass. The only waiting is for a background policy refresh
//! (real network I/O to the emulator) to land, bounded by a generous deadline.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::handler::Handler as _;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum_stytch::Verdict;
use axum_stytch::testing::{Endpoint, Fault, SessionTokens, StytchEmulator};
use axum_stytch::testing::{Policy, Role};
use axum_stytch::{AuthenticatedMember, Authorized, Clock as _, RequireAuthz, StytchAuth};
use common::*;
use http::StatusCode;
use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use serde_json::{Value, json};

axum_stytch::permission!(CreateDocument = "document", "create");

/// Role ids used in these tests: none may ever appear in a rejection body.
const ROLE_IDS: [&str; 6] = [
    "viewer",
    "editor",
    "admin",
    "auditor",
    "stytch_member",
    "stytch_admin",
];

/// viewer: document/read; admin: document/*.
fn policy() -> Policy {
    Policy::new()
        .role(Role::new("viewer").allow("document", ["read"]))
        .role(Role::new("admin").allow("document", ["*"]))
}

/// A member of `org` with `roles` and a fresh session.
fn member(emu: &StytchEmulator, org: &str, email: &str, roles: &[&str]) -> SessionTokens {
    let id = emu.create_member(org, email, roles);
    emu.create_session(&id)
}

fn jwt(tokens: &SessionTokens) -> String {
    cookies(Some(&tokens.session_jwt), None)
}

fn token(tokens: &SessionTokens) -> String {
    cookies(None, Some(&tokens.session_token))
}

/// The common app plus the routes these tests need, all behind the layer.
fn rbac_app(auth: &StytchAuth) -> Router {
    let programmatic = auth.clone();
    let extra = Router::new()
        .route(
            "/reports",
            get(|| async { "report" }).route_layer(RequireAuthz::new("report", "read")),
        )
        .route(
            "/orgs/{organization_id}/reports",
            get(|| async { "report" }).route_layer(
                RequireAuthz::new("report", "read").organization_from_path("organization_id"),
            ),
        )
        .route("/typed/documents", post(typed_create))
        .route(
            "/orgs/{organization_id}/verdict",
            get(verdict_handler).route_layer(
                RequireAuthz::new("document", "read").organization_from_path("organization_id"),
            ),
        )
        .route(
            "/orgs/{organization_id}/documents/delete",
            post(move |m: AuthenticatedMember, Path(org): Path<String>| {
                let auth = programmatic.clone();
                async move {
                    match auth.authorize(&m, &org, "document", "delete").await {
                        Ok(verdict) => {
                            (StatusCode::OK, verdict.granting_roles().join(",")).into_response()
                        }
                        Err(rejection) => rejection.into_response(),
                    }
                }
            }),
        )
        .route(
            "/teams/{team_id}/documents",
            get(|| async { "unreachable" }).route_layer(
                RequireAuthz::new("document", "read").organization_from_path("organization_id"),
            ),
        )
        .route("/unguarded/verdict", get(verdict_only))
        // The guard as a handler layer instead of a route layer.
        .route(
            "/orgs/{organization_id}/handler-guarded",
            get(verdict_handler.layer(
                RequireAuthz::new("document", "read").organization_from_path("organization_id"),
            )),
        )
        .layer(auth.layer());
    app(auth).merge(extra)
}

async fn typed_create(auth: Authorized<CreateDocument>) -> Json<Value> {
    Json(json!({
        "member": auth.member().member_id(),
        "granting_roles": auth.verdict().granting_roles(),
        "resource": auth.verdict().resource(),
        "action": auth.verdict().action(),
    }))
}

async fn verdict_handler(member: AuthenticatedMember, verdict: Verdict) -> Json<Value> {
    Json(json!({
        "member": member.member_id(),
        "granting_roles": verdict.granting_roles(),
        "organization_id": verdict.organization_id(),
        "resource": verdict.resource(),
        "action": verdict.action(),
    }))
}

async fn verdict_only(verdict: Verdict) -> String {
    verdict.granting_roles().join(",")
}

#[track_caller]
fn assert_ok(res: &TestResponse) {
    assert_eq!(res.status, StatusCode::OK, "body: {}", res.body);
}

/// A 403 with `reason`, naming `resource`/`action` and no role id.
#[track_caller]
fn assert_forbidden(res: &TestResponse, reason: &str, resource: &str, action: &str) {
    assert_eq!(res.status, StatusCode::FORBIDDEN, "body: {}", res.body);
    let body = res.json();
    assert_eq!(body["error"], reason, "body: {}", res.body);
    assert_eq!(body["resource"], resource, "body: {}", res.body);
    assert_eq!(body["action"], action, "body: {}", res.body);
    assert!(body["message"].is_string(), "body: {}", res.body);
    assert_no_roles(res);
}

#[track_caller]
fn assert_no_roles(res: &TestResponse) {
    for role in ROLE_IDS {
        assert!(
            !res.body.contains(role),
            "rejection body leaks role id {role:?}: {}",
            res.body
        );
    }
}

#[track_caller]
fn assert_unauthorized(res: &TestResponse, reason: &str) {
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "body: {}", res.body);
    assert_eq!(res.reason(), reason, "body: {}", res.body);
    assert!(res.headers.contains_key(WWW_AUTHENTICATE));
    assert_no_roles(res);
}

#[track_caller]
/// Asserts a 503 `stytch_unavailable`; returns its `Retry-After` (seconds).
fn assert_unavailable(res: &TestResponse) -> u64 {
    assert_eq!(
        res.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "body: {}",
        res.body
    );
    assert_eq!(res.reason(), "stytch_unavailable", "body: {}", res.body);
    assert!(
        res.headers.contains_key(RETRY_AFTER),
        "503 without Retry-After"
    );
    res.retry_after_secs()
}

/// Sends `POST path` until it answers 200, for a background refresh (real I/O to
/// the emulator) to land. Returns the statuses seen before the 200.
async fn post_until_ok(app: &Router, path: &str, cookie: &str) -> Vec<StatusCode> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        let res = send(app, "POST", path, Some(cookie)).await;
        if res.status == StatusCode::OK {
            return seen;
        }
        seen.push(res.status);
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {} after 10 s: {}",
            res.status,
            res.body
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the emulator has seen `n` requests on `endpoint` (a background
/// task's call), bounded by a generous deadline.
async fn wait_for_requests(emu: &StytchEmulator, endpoint: Endpoint, n: u64) {
    let what = format!("{n} requests to {endpoint:?}");
    wait_until(&what, || emu.requests(endpoint) >= n).await;
}

// ---------------------------------------------------------------------------------
// 1. allowed / denied for locally verified JWT members

#[tokio::test]
async fn jwt_members_are_allowed_and_denied_by_the_policy() {
    let f = fixture().await;
    f.emu.set_policy(policy());
    let viewer = member(&f.emu, &f.org, "vi@acme.test", &["viewer"]);
    let admin = member(&f.emu, &f.org, "ad@acme.test", &["admin"]);
    let app = rbac_app(&f.auth);
    let own_docs = format!("/orgs/{}/documents", f.org);

    // viewer: document/read yes, document/create no.
    assert_ok(&get_with(&app, &own_docs, &jwt(&viewer)).await);
    let res = send(&app, "POST", "/documents", Some(&jwt(&viewer))).await;
    assert_forbidden(&res, "permission_denied", "document", "create");
    assert_eq!(
        res.json().as_object().unwrap().len(),
        4,
        "exactly error, message, resource, action: {}",
        res.body
    );

    // admin: document/* grants both.
    let res = send(&app, "POST", "/documents", Some(&jwt(&admin))).await;
    assert_ok(&res);
    assert_eq!(res.body, "created");
    assert_ok(&get_with(&app, &own_docs, &jwt(&admin)).await);

    // The fixture member ("editor", unknown to the policy) is denied read.
    let res = get_with(&app, &own_docs, &jwt(&f.session)).await;
    assert_forbidden(&res, "permission_denied", "document", "read");

    // All decided locally: no authenticate call, one policy fetch.
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 0);
    assert_eq!(f.emu.requests(Endpoint::Policy), 1);
}

// ---------------------------------------------------------------------------------
// 2. no (valid) session → 401, never 403

#[tokio::test]
async fn no_session_is_401_on_every_guarded_route() {
    let f = fixture().await;
    f.emu.set_policy(policy());
    let other_org = f.emu.create_organization("globex");
    let app = rbac_app(&f.auth);
    let routes = [
        ("POST", "/documents".to_owned()),
        ("GET", format!("/orgs/{}/documents", f.org)),
        ("GET", format!("/orgs/{other_org}/documents")),
        ("GET", "/reports".to_owned()),
        ("GET", format!("/orgs/{other_org}/reports")),
        ("POST", "/typed/documents".to_owned()),
        ("GET", format!("/orgs/{other_org}/verdict")),
    ];

    // A revoked session token (Stytch answers 404 even with an authorization_check).
    let revoked = member(&f.emu, &f.org, "gone@acme.test", &["admin"]);
    f.emu.revoke_session(&revoked.member_session_id);
    let garbage_jwt = jwt_cookie("not.a.jwt");

    for (method, path) in &routes {
        let res = send(&app, method, path, None).await;
        assert_unauthorized(&res, "missing_credentials");

        let res = send(&app, method, path, Some(&garbage_jwt)).await;
        assert_unauthorized(&res, "invalid_token");

        let res = send(&app, method, path, Some(&token(&revoked))).await;
        assert_unauthorized(&res, "session_revoked");
    }
    // Nobody was authenticated: the policy was never needed.
    assert_eq!(f.emu.requests(Endpoint::Policy), 0);
    assert_eq!(f.emu.requests(Endpoint::OrganizationPolicy), 0);
}

// ---------------------------------------------------------------------------------
// 3. tenancy

#[tokio::test]
async fn tenancy_mismatch_beats_the_admin_role() {
    let f = fixture().await;
    f.emu.set_policy(policy());
    let org_b = f.emu.create_organization("globex");
    let admin = member(&f.emu, &f.org, "ad@acme.test", &["admin", "stytch_admin"]);
    let app = rbac_app(&f.auth);

    let res = get_with(&app, &format!("/orgs/{org_b}/documents"), &jwt(&admin)).await;
    assert_forbidden(&res, "tenancy_mismatch", "document", "read");
    // Tenancy is decided before any policy is needed.
    assert_eq!(f.emu.requests(Endpoint::Policy), 0);
    assert_eq!(f.emu.requests(Endpoint::OrganizationPolicy), 0);

    let res = get_with(&app, &format!("/orgs/{}/documents", f.org), &jwt(&admin)).await;
    assert_ok(&res);
    assert_eq!(res.body, "listed");
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 0);
}

#[tokio::test]
async fn the_guard_decides_alike_as_a_handler_layer() {
    let f = fixture().await;
    f.emu.set_policy(policy());
    let org_b = f.emu.create_organization("globex");
    let viewer = member(&f.emu, &f.org, "vi@acme.test", &["viewer"]);
    let app = rbac_app(&f.auth);
    let own = format!("/orgs/{}/handler-guarded", f.org);

    let res = get_with(&app, &own, &jwt(&viewer)).await;
    assert_ok(&res);
    assert_eq!(res.json()["organization_id"], f.org.as_str());
    assert_eq!(res.json()["granting_roles"], json!(["viewer"]));
    let other = format!("/orgs/{org_b}/handler-guarded");
    let res = get_with(&app, &other, &jwt(&viewer)).await;
    assert_forbidden(&res, "tenancy_mismatch", "document", "read");
    // "editor" is unknown to this policy: no permission.
    let res = get_with(&app, &own, &jwt(&f.session)).await;
    assert_forbidden(&res, "permission_denied", "document", "read");
    let res = send(&app, "GET", &own, None).await;
    assert_unauthorized(&res, "missing_credentials");
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 0);
}

// ---------------------------------------------------------------------------------
// 4. policy changes

/// A viewer denied document/create by the cached policy, after which Stytch's policy
/// grants it: `(fixture, viewer, app)`.
async fn viewer_granted_create_at_stytch() -> (Fixture, SessionTokens, Router) {
    let f = fixture().await;
    f.emu.set_policy(policy());
    let viewer = member(&f.emu, &f.org, "vi@acme.test", &["viewer"]);
    let app = rbac_app(&f.auth);
    let res = send(&app, "POST", "/documents", Some(&jwt(&viewer))).await;
    assert_forbidden(&res, "permission_denied", "document", "create");
    assert_eq!(f.emu.requests(Endpoint::Policy), 1);
    f.emu.set_policy(
        Policy::new()
            .role(Role::new("viewer").allow("document", ["read", "create"]))
            .role(Role::new("admin").allow("document", ["*"])),
    );
    (f, viewer, app)
}

#[tokio::test]
async fn policy_change_reaches_jwt_members_after_the_ttl() {
    let (f, viewer, app) = viewer_granted_create_at_stytch().await;
    let clock = f.emu.clock();

    // Still denied from the cache, with the same (still fresh) JWT ...
    let res = send(&app, "POST", "/documents", Some(&jwt(&viewer))).await;
    assert_forbidden(&res, "permission_denied", "document", "create");
    clock.advance(Duration::from_secs(269));
    let res = send(&app, "POST", "/documents", Some(&jwt(&viewer))).await;
    assert_forbidden(&res, "permission_denied", "document", "create");
    // ... and with a JWT minted now (carrying the same roles).
    let fresh = f.emu.mint_jwt(&viewer.member_session_id);
    let res = send(&app, "POST", "/documents", Some(&jwt_cookie(&fresh))).await;
    assert_forbidden(&res, "permission_denied", "document", "create");
    assert_eq!(
        f.emu.requests(Endpoint::Policy),
        1,
        "refetched before the last tenth of the TTL"
    );

    // Past the TTL (300 s) after a quiet spell: the first request waits for the
    // refresh, and is decided by the new policy.
    clock.advance(Duration::from_secs(32));
    let fresh = f.emu.mint_jwt(&viewer.member_session_id);
    let res = send(&app, "POST", "/documents", Some(&jwt_cookie(&fresh))).await;
    assert_ok(&res);
    assert_eq!(
        f.emu.requests(Endpoint::Policy),
        2,
        "exactly one refresh after the TTL"
    );
    // Settled: no further fetches.
    let res = send(&app, "POST", "/documents", Some(&jwt_cookie(&fresh))).await;
    assert_ok(&res);
    assert_eq!(f.emu.requests(Endpoint::Policy), 2);
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 0);
}

/// A clock stepped back (a VM resumed, a manual correction) must not make the cached
/// policy count as fresh for as long as the step: its age is unknown, so the next
/// request waits for it to be fetched again, and the new policy decides. The keys are
/// refreshed too, in the background (a key's age decides no permission).
#[tokio::test]
async fn a_clock_stepped_back_does_not_stretch_the_policy_freshness() {
    let (f, viewer, app) = viewer_granted_create_at_stytch().await;
    let clock = f.emu.clock();
    let jwks_fetches = f.emu.requests(Endpoint::Jwks);
    clock.set(clock.now() - Duration::from_secs(3600));
    // Minted at the new time, so valid locally.
    let fresh = f.emu.mint_jwt(&viewer.member_session_id);
    let res = send(&app, "POST", "/documents", Some(&jwt_cookie(&fresh))).await;
    assert_ok(&res);
    assert_eq!(f.emu.requests(Endpoint::Policy), 2);
    wait_for_requests(&f.emu, Endpoint::Jwks, jwks_fetches + 1).await;
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 0);
    // Stamped at the new time: settled.
    let res = send(&app, "POST", "/documents", Some(&jwt_cookie(&fresh))).await;
    assert_ok(&res);
    assert_eq!(f.emu.requests(Endpoint::Policy), 2);
}

/// A busy service never waits for the policy: in the last tenth of its TTL it is
/// refreshed in the background while requests are decided at once.
#[tokio::test]
async fn policy_is_refreshed_ahead_of_its_ttl_under_traffic() {
    let (f, viewer, app) = viewer_granted_create_at_stytch().await;
    let clock = f.emu.clock();

    clock.advance(Duration::from_secs(280));
    let before = post_until_ok(&app, "/documents", &jwt(&viewer)).await;
    assert!(
        before.iter().all(|s| *s == StatusCode::FORBIDDEN),
        "only denials by the previous policy before the refresh lands: {before:?}"
    );
    assert_eq!(f.emu.requests(Endpoint::Policy), 2, "one refresh ahead");
    // Past the first TTL: the refreshed policy is young, nothing is fetched.
    clock.advance(Duration::from_secs(25));
    let fresh = f.emu.mint_jwt(&viewer.member_session_id);
    let res = send(&app, "POST", "/documents", Some(&jwt_cookie(&fresh))).await;
    assert_ok(&res);
    assert_eq!(f.emu.requests(Endpoint::Policy), 2);
}

#[tokio::test]
async fn policy_and_role_changes_reach_token_sessions_at_once() {
    let f = fixture().await;
    // The fixture member has "editor", unknown to this policy.
    f.emu.set_policy(policy());
    let app = rbac_app(&f.auth);
    let path = format!("/orgs/{}/documents", f.org);
    let cookie = token(&f.session);

    let res = get_with(&app, &path, &cookie).await;
    assert_forbidden(&res, "permission_denied", "document", "read");
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 1);

    // Policy change: visible on the very next request, no clock advance.
    f.emu
        .set_policy(policy().role(Role::new("editor").allow("document", ["read"])));
    let res = get_with(&app, &path, &cookie).await;
    assert_ok(&res);
    assert_eq!(res.body, "listed");
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 2);

    // And taken away again.
    f.emu.set_policy(policy());
    let res = get_with(&app, &path, &cookie).await;
    assert_forbidden(&res, "permission_denied", "document", "read");
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 3);

    // A role change of the member is visible at once too.
    f.emu.set_member_roles(&f.member, &["viewer"]);
    let res = get_with(&app, &path, &cookie).await;
    assert_ok(&res);
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 4);

    // Stytch decided every time: the policy was never fetched.
    assert_eq!(f.emu.requests(Endpoint::Policy), 0);
    assert_eq!(f.emu.requests(Endpoint::OrganizationPolicy), 0);
}

#[tokio::test]
async fn stale_jwt_is_decided_by_stytch_in_one_call() {
    let f = fixture().await;
    f.emu.set_policy(policy());
    let viewer = member(&f.emu, &f.org, "vi@acme.test", &["viewer"]);
    let app = rbac_app(&f.auth);
    // Older than max_token_age (300 s) but the session is alive (60 min).
    f.emu.clock().advance(Duration::from_secs(600));

    let res = get_with(&app, &format!("/orgs/{}/documents", f.org), &jwt(&viewer)).await;
    assert_ok(&res);
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 1);

    // No path org: the stale JWT's organization is used for the check.
    let res = send(&app, "POST", "/documents", Some(&jwt(&viewer))).await;
    assert_forbidden(&res, "permission_denied", "document", "create");
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 2);

    let org_b = f.emu.create_organization("globex");
    let res = get_with(&app, &format!("/orgs/{org_b}/documents"), &jwt(&viewer)).await;
    assert_forbidden(&res, "tenancy_mismatch", "document", "read");
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 3);

    assert_eq!(f.emu.requests(Endpoint::Policy), 0);
    assert_eq!(f.emu.requests(Endpoint::OrganizationPolicy), 0);
}

// ---------------------------------------------------------------------------------
// 5. cold-cache stampede

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]

async fn cold_start_stampede_fetches_the_jwks_and_the_policies_once() {
    const REQUESTS: usize = 1_000;
    const MEMBERS: usize = 20;
    let f = fixture().await;
    f.emu.set_policy(policy());
    let app = rbac_app(&f.auth);
    let cookies: Vec<String> = (0..MEMBERS)
        .map(|i| {
            jwt(&member(
                &f.emu,
                &f.org,
                &format!("m{i}@acme.test"),
                &["viewer"],
            ))
        })
        .collect();
    let path = format!("/orgs/{}/documents", f.org);

    let barrier = Arc::new(tokio::sync::Barrier::new(REQUESTS));
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let app = app.clone();
            let path = path.clone();
            let cookie = cookies[i % MEMBERS].clone();
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                get_with(&app, &path, &cookie).await
            })
        })
        .collect();
    for task in tasks {
        let res = task.await.expect("request task");
        assert_ok(&res);
    }
    // A cold instance (nothing warmed up): one fetch of each, shared by all 1,000.
    assert_eq!(f.emu.requests(Endpoint::Jwks), 1, "one JWKS fetch");
    assert_eq!(f.emu.requests(Endpoint::Policy), 1, "one policy fetch");
    assert_eq!(
        f.emu.requests(Endpoint::OrganizationPolicy),
        1,
        "one organization policy fetch"
    );
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 0);
}

// ---------------------------------------------------------------------------------
// 6. policy endpoint down

/// A 429 to one organization's policy fetch stops every policy fetch for its
/// `Retry-After`: members of many organizations must not make one fetch per
/// organization each. Grants by the project policy still stand; a denial that the
/// organization's custom roles might lift is 503.
#[tokio::test]
async fn a_rate_limited_policy_fetch_stops_every_organizations_fetch() {
    let f = fixture().await;
    f.emu.set_policy(policy());
    let app = rbac_app(&f.auth);
    let clock = f.emu.clock();
    f.emu.inject_fault(
        Endpoint::OrganizationPolicy,
        Fault::RateLimited {
            retry_after: Duration::from_secs(30),
            times: 1,
        },
    );
    let orgs: Vec<String> = (0..6)
        .map(|i| f.emu.create_organization(&format!("org-{i}")))
        .collect();
    let admins: Vec<SessionTokens> = orgs
        .iter()
        .map(|org| member(&f.emu, org, "ad@org.test", &["admin"]))
        .collect();
    for admin in &admins[..5] {
        let res = send(&app, "POST", "/documents", Some(&jwt(admin))).await;
        assert_ok(&res);
    }
    assert_eq!(f.emu.requests(Endpoint::OrganizationPolicy), 1);
    assert_eq!(f.emu.requests(Endpoint::Policy), 1);
    assert_eq!(f.auth.metrics().policy_fetch_failures, 1);
    // Denied by the project policy, custom roles unknown: not a 403, and to be retried
    // once Stytch's Retry-After is over (not after the 5 s retry backoff).
    let viewer = member(&f.emu, &orgs[5], "vi@org.test", &["viewer"]);
    let res = send(&app, "POST", "/documents", Some(&jwt(&viewer))).await;
    assert_eq!(assert_unavailable(&res), 30);
    assert_eq!(f.emu.requests(Endpoint::OrganizationPolicy), 1);

    // Past the Retry-After: fetched again.
    clock.advance(Duration::from_secs(31));
    let fresh = f.emu.mint_jwt(&admins[5].member_session_id);
    assert_ok(&send(&app, "POST", "/documents", Some(&jwt_cookie(&fresh))).await);
    assert_eq!(f.emu.requests(Endpoint::OrganizationPolicy), 2);
}

#[tokio::test]
async fn policy_endpoint_down_past_the_grace_fails_closed_then_recovers() {
    let f = fixture().await;
    f.emu.set_policy(policy());
    let viewer = member(&f.emu, &f.org, "vi@acme.test", &["viewer"]);
    let app = rbac_app(&f.auth);
    let clock = f.emu.clock();
    let path = format!("/orgs/{}/documents", f.org);

    assert_ok(&get_with(&app, &path, &jwt(&viewer)).await);
    assert_eq!(f.emu.requests(Endpoint::Policy), 1);

    f.emu.inject_fault(
        Endpoint::Policy,
        Fault::Status {
            status: 500,
            times: 1000,
        },
    );

    // Past TTL + grace since the last successful fetch: fail closed.
    clock.advance(Duration::from_secs(300 + 900 + 1));
    let fresh = f.emu.mint_jwt(&viewer.member_session_id);
    let res = get_with(&app, &path, &jwt_cookie(&fresh)).await;
    assert_unavailable(&res);
    // A member the stale policy would deny is not told 403 either.
    let res = send(&app, "POST", "/documents", Some(&jwt_cookie(&fresh))).await;
    assert_eq!(assert_unavailable(&res), 5, "the retry backoff");
    let failed = f.emu.requests(Endpoint::Policy);
    assert_eq!(failed, 2, "one failed attempt, then the retry backoff");

    // Stytch is back, but the failed attempt is less than 5 s old: no new attempt.
    f.emu.clear_faults();
    clock.advance(Duration::from_secs(2));
    let res = get_with(&app, &path, &jwt_cookie(&fresh)).await;
    assert_eq!(assert_unavailable(&res), 3, "what is left of the backoff");
    assert_eq!(
        f.emu.requests(Endpoint::Policy),
        failed,
        "retried within the backoff"
    );

    // Past the retry backoff: fetched again and allowed.
    clock.advance(Duration::from_secs(4));
    let fresh = f.emu.mint_jwt(&viewer.member_session_id);
    assert_ok(&get_with(&app, &path, &jwt_cookie(&fresh)).await);
    assert_eq!(f.emu.requests(Endpoint::Policy), failed + 1);
    // A denial is a denial again (not a 503).
    let res = send(&app, "POST", "/documents", Some(&jwt_cookie(&fresh))).await;
    assert_forbidden(&res, "permission_denied", "document", "create");
}

#[tokio::test]
async fn policy_is_served_stale_within_the_grace_while_the_endpoint_is_down() {
    let f = fixture().await;
    f.emu.set_policy(policy());
    let viewer = member(&f.emu, &f.org, "vi@acme.test", &["viewer"]);
    let app = rbac_app(&f.auth);
    let clock = f.emu.clock();
    let path = format!("/orgs/{}/documents", f.org);

    assert_ok(&get_with(&app, &path, &jwt(&viewer)).await);
    f.emu.inject_fault(
        Endpoint::Policy,
        Fault::Status {
            status: 500,
            times: 1000,
        },
    );

    // Past the TTL: served from the stale policy, a refresh failing behind.
    clock.advance(Duration::from_secs(301));
    let fresh = f.emu.mint_jwt(&viewer.member_session_id);
    assert_ok(&get_with(&app, &path, &jwt_cookie(&fresh)).await);
    wait_for_requests(&f.emu, Endpoint::Policy, 2).await;
    let res = send(&app, "POST", "/documents", Some(&jwt_cookie(&fresh))).await;
    assert_forbidden(&res, "permission_denied", "document", "create");

    // Still within TTL + grace (1,200 s) of the last successful fetch.
    clock.advance(Duration::from_secs(898));
    let fresh = f.emu.mint_jwt(&viewer.member_session_id);
    assert_ok(&get_with(&app, &path, &jwt_cookie(&fresh)).await);
    let res = send(&app, "POST", "/documents", Some(&jwt_cookie(&fresh))).await;
    assert_forbidden(&res, "permission_denied", "document", "create");
}

#[tokio::test]
async fn policy_endpoint_down_at_start_fails_closed_then_recovers() {
    let f = fixture().await;
    f.emu.set_policy(policy());
    let viewer = member(&f.emu, &f.org, "vi@acme.test", &["viewer"]);
    let app = rbac_app(&f.auth);
    let path = format!("/orgs/{}/documents", f.org);
    f.emu.inject_fault(
        Endpoint::Policy,
        Fault::Status {
            status: 500,
            times: 1000,
        },
    );

    let res = get_with(&app, &path, &jwt(&viewer)).await;
    assert_unavailable(&res);
    // A member the policy would deny is not told 403 either: nothing is known.
    let res = send(&app, "POST", "/documents", Some(&jwt(&viewer))).await;
    assert_unavailable(&res);
    // One failed attempt; the second request fell in the retry backoff.
    let failed_fetches = f.emu.requests(Endpoint::Policy);
    assert_eq!(failed_fetches, 1);

    f.emu.clear_faults();
    f.emu.clock().advance(Duration::from_secs(6));
    assert_ok(&get_with(&app, &path, &jwt(&viewer)).await);
    assert_eq!(f.emu.requests(Endpoint::Policy), failed_fetches + 1);
}

// ---------------------------------------------------------------------------------
// 7. organization custom roles

#[tokio::test]
async fn organization_custom_roles_apply_only_in_their_organization() {
    let f = fixture().await;
    f.emu.set_policy(policy());
    let org_a = f.org.clone();
    let org_b = f.emu.create_organization("globex");
    f.emu
        .set_organization_roles(&org_a, vec![Role::new("auditor").allow("report", ["read"])]);
    // Org B has its own, different "auditor".
    f.emu.set_organization_roles(
        &org_b,
        vec![Role::new("auditor").allow("invoice", ["read"])],
    );
    let auditor_a = member(&f.emu, &org_a, "au@acme.test", &["auditor"]);
    let auditor_b = member(&f.emu, &org_b, "au@globex.test", &["auditor"]);
    let app = rbac_app(&f.auth);

    // Locally verified JWTs, org A first so its roles are cached.
    assert_ok(&get_with(&app, "/reports", &jwt(&auditor_a)).await);
    assert_ok(&get_with(&app, &format!("/orgs/{org_a}/reports"), &jwt(&auditor_a)).await);
    let res = get_with(&app, "/reports", &jwt(&auditor_b)).await;
    assert_forbidden(&res, "permission_denied", "report", "read");
    let res = get_with(&app, &format!("/orgs/{org_b}/reports"), &jwt(&auditor_b)).await;
    assert_forbidden(&res, "permission_denied", "report", "read");
    // Org A's member is still allowed after org B's roles were loaded.
    assert_ok(&get_with(&app, "/reports", &jwt(&auditor_a)).await);
    // Custom roles do not grant project resources.
    let res = get_with(&app, &format!("/orgs/{org_a}/documents"), &jwt(&auditor_a)).await;
    assert_forbidden(&res, "permission_denied", "document", "read");

    assert_eq!(f.emu.requests(Endpoint::Policy), 1);
    assert_eq!(
        f.emu.requests(Endpoint::OrganizationPolicy),
        2,
        "one fetch per organization"
    );

    // Token sessions: Stytch decides with the same semantics.
    assert_ok(&get_with(&app, &format!("/orgs/{org_a}/reports"), &token(&auditor_a)).await);
    let res = get_with(&app, &format!("/orgs/{org_b}/reports"), &token(&auditor_b)).await;
    assert_forbidden(&res, "permission_denied", "report", "read");
    // Bare token, no path org: authenticated, then decided locally.
    let res = get_with(&app, "/reports", &token(&auditor_b)).await;
    assert_forbidden(&res, "permission_denied", "report", "read");
    assert_ok(&get_with(&app, "/reports", &token(&auditor_a)).await);
}

// ---------------------------------------------------------------------------------
// 8. typed permissions

#[tokio::test]
async fn typed_permission_extractor_allows_and_denies() {
    let f = fixture().await;
    f.emu.set_policy(policy());
    let admin = member(&f.emu, &f.org, "ad@acme.test", &["viewer", "admin"]);
    let viewer = member(&f.emu, &f.org, "vi@acme.test", &["viewer"]);
    let app = rbac_app(&f.auth);

    let res = send(&app, "POST", "/typed/documents", Some(&jwt(&admin))).await;
    assert_ok(&res);
    let body = res.json();
    assert_eq!(body["granting_roles"], json!(["admin"]));
    assert_eq!(body["resource"], "document");
    assert_eq!(body["action"], "create");

    let res = send(&app, "POST", "/typed/documents", Some(&jwt(&viewer))).await;
    assert_forbidden(&res, "permission_denied", "document", "create");

    // Bare token session: authenticated once, decided locally.
    let res = send(&app, "POST", "/typed/documents", Some(&token(&admin))).await;
    assert_ok(&res);
    assert_eq!(res.json()["granting_roles"], json!(["admin"]));
    let res = send(&app, "POST", "/typed/documents", Some(&token(&viewer))).await;
    assert_forbidden(&res, "permission_denied", "document", "create");
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 2);

    let res = send(&app, "POST", "/typed/documents", None).await;
    assert_unauthorized(&res, "missing_credentials");
}

// ---------------------------------------------------------------------------------
// 9. Verdict after RequireAuthz

#[tokio::test]
async fn verdict_lists_every_granting_role() {
    let f = fixture().await;
    f.emu.set_policy(policy());
    let both = member(&f.emu, &f.org, "both@acme.test", &["viewer", "admin"]);
    let app = rbac_app(&f.auth);
    let path = format!("/orgs/{}/verdict", f.org);

    let expected = json!({
        "member": f.emu.session(&both.member_session_id).unwrap().member_id,
        "granting_roles": ["viewer", "admin"],
        "organization_id": f.org,
        "resource": "document",
        "action": "read",
    });

    // Locally decided.
    let res = get_with(&app, &path, &jwt(&both)).await;
    assert_ok(&res);
    assert_eq!(res.json(), expected);
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 0);

    // Decided by Stytch (its verdict), still one authenticate call although the
    // handler also extracts the member.
    let res = get_with(&app, &path, &token(&both)).await;
    assert_ok(&res);
    assert_eq!(res.json(), expected);
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 1);
}

// ---------------------------------------------------------------------------------
// 10. programmatic StytchAuth::authorize

#[tokio::test]
async fn programmatic_authorize_in_a_handler() {
    let f = fixture().await;
    f.emu.set_policy(policy());
    let org_b = f.emu.create_organization("globex");
    let admin = member(&f.emu, &f.org, "ad@acme.test", &["admin"]);
    let viewer = member(&f.emu, &f.org, "vi@acme.test", &["viewer"]);
    let app = rbac_app(&f.auth);
    let own = format!("/orgs/{}/documents/delete", f.org);

    let res = send(&app, "POST", &own, Some(&jwt(&admin))).await;
    assert_ok(&res);
    assert_eq!(res.body, "admin");

    let res = send(&app, "POST", &own, Some(&jwt(&viewer))).await;
    assert_forbidden(&res, "permission_denied", "document", "delete");

    let res = send(
        &app,
        "POST",
        &format!("/orgs/{org_b}/documents/delete"),
        Some(&jwt(&admin)),
    )
    .await;
    assert_forbidden(&res, "tenancy_mismatch", "document", "delete");

    // A member from a token session is decided the same way.
    let res = send(&app, "POST", &own, Some(&token(&admin))).await;
    assert_ok(&res);
    let res = send(&app, "POST", &own, Some(&token(&viewer))).await;
    assert_forbidden(&res, "permission_denied", "document", "delete");
}

// ---------------------------------------------------------------------------------
// 11. token sessions decided by Stytch

#[tokio::test]
async fn token_sessions_are_denied_by_stytch() {
    let f = fixture().await;
    f.emu.set_policy(policy());
    let org_b = f.emu.create_organization("globex");
    let admin = member(&f.emu, &f.org, "ad@acme.test", &["admin"]);
    let app = rbac_app(&f.auth);

    // "editor" grants nothing: Stytch answers 403 session_authorization_error.
    let res = get_with(
        &app,
        &format!("/orgs/{}/documents", f.org),
        &token(&f.session),
    )
    .await;
    assert_forbidden(&res, "permission_denied", "document", "read");
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 1);

    // Another organization's path: 403 session_authorization_tenancy_error.
    let res = get_with(&app, &format!("/orgs/{org_b}/documents"), &token(&admin)).await;
    assert_forbidden(&res, "tenancy_mismatch", "document", "read");
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 2);

    // The same JWT+token pair prefers the local path (fresh JWT).
    let res = get_with(
        &app,
        &format!("/orgs/{org_b}/documents"),
        &cookies(Some(&admin.session_jwt), Some(&admin.session_token)),
    )
    .await;
    assert_forbidden(&res, "tenancy_mismatch", "document", "read");
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 2);

    assert_eq!(f.emu.requests(Endpoint::Policy), 0);
    assert_eq!(f.emu.requests(Endpoint::OrganizationPolicy), 0);
}

// ---------------------------------------------------------------------------------
// 12. only stytch_member

#[tokio::test]
async fn member_with_only_the_default_role_is_denied() {
    let f = fixture().await;
    f.emu.set_policy(policy());
    let plain = member(&f.emu, &f.org, "plain@acme.test", &[]);
    assert_eq!(
        f.emu.session(&plain.member_session_id).unwrap().roles,
        ["stytch_member"]
    );
    let app = rbac_app(&f.auth);
    let path = format!("/orgs/{}/documents", f.org);

    let res = get_with(&app, &path, &jwt(&plain)).await;
    assert_forbidden(&res, "permission_denied", "document", "read");
    let res = send(&app, "POST", "/documents", Some(&jwt(&plain))).await;
    assert_forbidden(&res, "permission_denied", "document", "create");
    let res = get_with(&app, &path, &token(&plain)).await;
    assert_forbidden(&res, "permission_denied", "document", "read");
    // The session itself is fine.
    let res = get_with(&app, "/me", &jwt(&plain)).await;
    assert_ok(&res);
}

// ---------------------------------------------------------------------------------
// 13. JWT without a roles claim

/// Re-signs `jwt` with the emulator's signing key after `patch`ing its claims.
fn resign(emu: &StytchEmulator, jwt: &str, patch: impl FnOnce(&mut Value)) -> String {
    let mut claims = claims_of(jwt);
    patch(&mut claims);
    emu.sign_claims(&claims)
}

#[tokio::test]
async fn jwt_without_a_roles_claim_is_denied() {
    let f = fixture().await;
    f.emu.set_policy(policy());
    // An admin session, so only the missing claim can explain a denial.
    let admin = member(&f.emu, &f.org, "ad@acme.test", &["admin"]);
    let app = rbac_app(&f.auth);

    // Control: the re-signed JWT with roles intact is accepted and allowed.
    let intact = resign(&f.emu, &admin.session_jwt, |_| {});
    assert_ok(
        &get_with(
            &app,
            &format!("/orgs/{}/documents", f.org),
            &jwt_cookie(&intact),
        )
        .await,
    );

    let no_roles = resign(&f.emu, &admin.session_jwt, |claims| {
        let session = claims["https://stytch.com/session"]
            .as_object_mut()
            .expect("session claim");
        assert!(session.remove("roles").is_some(), "minted JWT has roles");
    });
    // The session is valid ...
    let res = get_with(&app, "/me", &jwt_cookie(&no_roles)).await;
    assert_ok(&res);
    // ... but grants nothing.
    let res = get_with(
        &app,
        &format!("/orgs/{}/documents", f.org),
        &jwt_cookie(&no_roles),
    )
    .await;
    assert_forbidden(&res, "permission_denied", "document", "read");
    let res = send(&app, "POST", "/documents", Some(&jwt_cookie(&no_roles))).await;
    assert_forbidden(&res, "permission_denied", "document", "create");
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 0);
}

// ---------------------------------------------------------------------------------
// 14. misconfiguration

#[tokio::test]
async fn organization_from_path_naming_a_missing_parameter_is_500() {
    let f = fixture().await;
    f.emu.set_policy(policy());
    let admin = member(&f.emu, &f.org, "ad@acme.test", &["admin"]);
    let app = rbac_app(&f.auth);

    let res = get_with(&app, "/teams/t1/documents", &jwt(&admin)).await;
    assert_eq!(
        res.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "body: {}",
        res.body
    );
    assert_eq!(res.reason(), "misconfigured");
    assert_ne!(res.body, "unreachable");

    // A Verdict extracted where no guard ran is a misconfiguration too.
    let res = get_with(&app, "/unguarded/verdict", &jwt(&admin)).await;
    assert_eq!(
        res.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "body: {}",
        res.body
    );
    assert_eq!(res.reason(), "misconfigured");
}

/// A path whose organization is not UTF-8 (`%FF`) is client input, not a
/// misconfiguration: it names no organization, so 401 without a session and 403
/// `tenancy_mismatch` with one (local or remote), never 500, and nothing logged above
/// DEBUG however often it is sent. A route that lacks the parameter logs its error
/// once a minute, not once per request.
#[tokio::test]
async fn an_organization_path_that_is_not_utf8_is_refused_as_another_organization() {
    let f = fixture().await;
    f.emu.set_policy(policy());
    let admin = member(&f.emu, &f.org, "ad@acme.test", &["admin"]);
    let app = rbac_app(&f.auth);
    let logs = CapturedLogs::default();
    let _recording = logs.on_this_thread();

    for path in ["/orgs/%FF/reports", "/orgs/%FF/handler-guarded"] {
        for _ in 0..20 {
            assert_unauthorized(&send(&app, "GET", path, None).await, "missing_credentials");
            let res = get_with(&app, path, &jwt(&admin)).await;
            assert_eq!(res.status, StatusCode::FORBIDDEN, "{path}: {}", res.body);
            assert_eq!(res.reason(), "tenancy_mismatch", "{path}");
        }
        // A member Stytch authenticates: the session is checked, the organization
        // needs no question.
        let res = get_with(&app, path, &token(&admin)).await;
        assert_eq!(res.reason(), "tenancy_mismatch", "{path}: {}", res.body);
    }
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 2);
    assert!(
        !logs.text().contains("WARN") && !logs.text().contains("ERROR"),
        "{}",
        logs.text()
    );

    for _ in 0..20 {
        let res = get_with(&app, "/teams/t1/documents", &jwt(&admin)).await;
        assert_eq!(res.reason(), "misconfigured");
    }
    assert_eq!(logs.text().matches("ERROR").count(), 1, "{}", logs.text());
}

// ---------------------------------------------------------------------------------
// 15. the guard's two paths

/// `RequireAuthz` decides without waiting once the policies are cached and fresh, and
/// waits (fetches) otherwise: the answers, the verdict and the user's error handler
/// must be the same either way.
#[tokio::test]
async fn guard_answers_the_same_whether_it_decides_at_once_or_after_a_fetch() {
    let f = fixture_with(|b| {
        b.error_handler(|rejection, _parts| {
            (rejection.status() == StatusCode::FORBIDDEN)
                .then(|| (StatusCode::FORBIDDEN, "custom forbidden").into_response())
        })
    })
    .await;
    f.emu
        .set_policy(policy().role(Role::new("writer").allow("document", ["read", "write"])));
    let viewer = member(&f.emu, &f.org, "vw@acme.test", &["stytch_member", "viewer"]);
    let writer = member(&f.emu, &f.org, "wr@acme.test", &["viewer", "writer"]);
    let app = Router::new()
        .route(
            "/read",
            get(verdict_handler).route_layer(RequireAuthz::new("document", "read")),
        )
        .route(
            "/write",
            get(verdict_handler).route_layer(RequireAuthz::new("document", "write")),
        )
        .layer(f.auth.layer());

    let mut answers = Vec::new();
    for round in ["cold", "warm", "warm again"] {
        let read = get_with(&app, "/read", &jwt(&writer)).await;
        assert_ok(&read);
        let denied = get_with(&app, "/write", &jwt(&viewer)).await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN, "{round}");
        assert_eq!(denied.body, "custom forbidden", "{round}");
        let allowed = get_with(&app, "/write", &jwt(&writer)).await;
        assert_ok(&allowed);
        answers.push((read.json(), allowed.json()));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    let (read, write) = &answers[0];
    assert_eq!(read["granting_roles"], json!(["viewer", "writer"]));
    assert_eq!(write["granting_roles"], json!(["writer"]));
    assert_eq!(read["organization_id"], f.org);
    assert_eq!(
        (write["resource"].as_str(), write["action"].as_str()),
        (Some("document"), Some("write"))
    );
    assert_eq!(f.emu.requests(Endpoint::Policy), 1);
    assert_eq!(f.emu.requests(Endpoint::OrganizationPolicy), 1);
    let metrics = f.auth.metrics();
    assert_eq!(
        metrics.failures_for(axum_stytch::Reason::PermissionDenied),
        3,
        "{metrics:?}"
    );
}

/// The guard and the `Authorized<P>` extractor decide at the clock reading the layer
/// took when it verified the JWT: time that passes inside the app after the layer
/// (here the mock clock moved past the policy's refresh interval by a middleware in
/// between) neither makes them wait for a policy fetch nor changes the answer.
#[tokio::test]
async fn guard_and_extractor_decide_at_the_time_the_layer_verified_the_jwt() {
    let f = fixture_with(|b| b.policy_refresh_interval(Duration::from_secs(10))).await;
    f.emu.set_policy(policy());
    let admin = member(&f.emu, &f.org, "ad@acme.test", &["viewer", "admin"]);
    let clock = f.emu.clock();
    // Seconds the middleware moves the clock by, after the layer, before the route.
    let inside = Arc::new(AtomicU64::new(0));
    let moved = Arc::clone(&inside);
    let app = Router::new()
        .route(
            "/guarded",
            get(verdict_handler).route_layer(RequireAuthz::new("document", "read")),
        )
        .route("/typed/documents", post(typed_create))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                clock.advance(Duration::from_secs(moved.load(Ordering::Relaxed)));
                next.run(req)
            },
        ))
        .layer(f.auth.layer());
    for (what, method, path, granting) in [
        ("the guard", "GET", "/guarded", json!(["viewer", "admin"])),
        (
            "the extractor",
            "POST",
            "/typed/documents",
            json!(["admin"]),
        ),
    ] {
        // A policy fresh at the next request's layer time (fetched now if stale).
        inside.store(0, Ordering::Relaxed);
        assert_ok(&send(&app, method, path, Some(&jwt(&admin))).await);
        let fetches = f.emu.requests(Endpoint::Policy);
        // Stale by the time the route runs: 11 s past a 10 s refresh interval, well
        // within the JWT's 300 s.
        inside.store(11, Ordering::Relaxed);
        let res = send(&app, method, path, Some(&jwt(&admin))).await;
        assert_ok(&res);
        assert_eq!(res.json()["granting_roles"], granting, "{what}");
        assert_eq!(f.emu.requests(Endpoint::Policy), fetches, "{what} waited");
    }
    assert_eq!(
        f.emu.requests(Endpoint::Authenticate),
        0,
        "verified locally"
    );
}

/// Two guards on one route, one deciding at once and one waiting for a path
/// parameter: the handler's `Verdict` is the inner (last) guard's, as with any
/// extension.
#[tokio::test]
async fn with_nested_guards_the_verdict_is_the_last_guards() {
    let f = fixture().await;
    f.emu.set_policy(policy());
    let admin = member(&f.emu, &f.org, "ad@acme.test", &["viewer", "admin"]);
    let app = Router::new()
        .route(
            "/orgs/{organization_id}/documents",
            get(verdict_handler)
                .route_layer(
                    RequireAuthz::new("document", "delete")
                        .organization_from_path("organization_id"),
                )
                .route_layer(RequireAuthz::new("document", "read")),
        )
        .layer(f.auth.layer());
    let path = format!("/orgs/{}/documents", f.org);
    for _ in 0..2 {
        let res = get_with(&app, &path, &jwt(&admin)).await;
        assert_ok(&res);
        let body = res.json();
        assert_eq!(body["action"], "delete", "{body}");
        assert_eq!(body["granting_roles"], json!(["admin"]));
    }
}
