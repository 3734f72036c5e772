//! The `metrics` feature: what the layer publishes through the `metrics` facade, read
//! back with metrics-util's `DebuggingRecorder`, installed for each test alone
//! (`metrics::set_default_local_recorder`: a `#[tokio::test]` runtime has one thread,
//! so the layer, its calls to the emulator and the tasks they spawn all see it).
//!
//! `cargo test --features metrics --test metrics_facade`
#![cfg(feature = "metrics")]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use axum_stytch::testing::{Endpoint, Fault};
use common::*;
use http::StatusCode;
use metrics::{LocalRecorderGuard, Unit};
use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// Everything recorded so far: counters summed over the snapshots (a snapshot hands
/// over what was added since the previous one), the last value of each gauge, every
/// histogram sample, and the descriptions.
#[derive(Default)]
struct Recorded {
    counters: HashMap<Series, u64>,
    gauges: HashMap<Series, f64>,
    histograms: HashMap<Series, Vec<f64>>,
    described: HashMap<String, (Option<Unit>, String)>,
}

/// A recorder for this test alone (this thread, while the guard lives), and what reads
/// it. The recorder is leaked: a test's few kilobytes.
fn recording() -> (Snapshotter, LocalRecorderGuard<'static>) {
    let recorder: &'static DebuggingRecorder = Box::leak(Box::new(DebuggingRecorder::new()));
    (
        recorder.snapshotter(),
        metrics::set_default_local_recorder(recorder),
    )
}

/// A name and its labels (sorted).
type Series = (String, Vec<(String, String)>);

fn series(name: &str, labels: &[(&str, &str)]) -> Series {
    let mut labels: Vec<_> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    (name.to_owned(), labels)
}

impl Recorded {
    fn take(&mut self, snapshotter: &Snapshotter) {
        for (key, unit, description, value) in snapshotter.snapshot().into_vec() {
            let (kind, key) = key.into_parts();
            let name = key.name().to_owned();
            let mut labels: Vec<_> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            if let Some(description) = description {
                self.described
                    .insert(name.clone(), (unit, description.to_string()));
            }
            let series = (name, labels);
            match (kind, value) {
                (MetricKind::Counter, DebugValue::Counter(n)) => {
                    *self.counters.entry(series).or_default() += n;
                }
                (MetricKind::Gauge, DebugValue::Gauge(v)) => {
                    self.gauges.insert(series, v.into_inner());
                }
                (MetricKind::Histogram, DebugValue::Histogram(vs)) => self
                    .histograms
                    .entry(series)
                    .or_default()
                    .extend(vs.into_iter().map(|v| v.into_inner())),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.counters
            .get(&series(name, labels))
            .copied()
            .unwrap_or_else(|| panic!("no counter {name} {labels:?}: {:?}", self.counters))
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.gauges
            .get(&series(name, labels))
            .copied()
            .unwrap_or_else(|| panic!("no gauge {name} {labels:?}: {:?}", self.gauges))
    }

    fn samples(&self, name: &str, labels: &[(&str, &str)]) -> usize {
        self.histograms
            .get(&series(name, labels))
            .map_or(0, Vec::len)
    }

    /// Every series, by kind.
    fn all(&self) -> impl Iterator<Item = (MetricKind, &Series)> {
        let mut all: Vec<_> = self
            .counters
            .keys()
            .map(|s| (MetricKind::Counter, s))
            .collect();
        all.extend(self.gauges.keys().map(|s| (MetricKind::Gauge, s)));
        all.extend(self.histograms.keys().map(|s| (MetricKind::Histogram, s)));
        all.into_iter()
    }
}

/// The values each label may take (README's "Metrics" table).
fn allowed(label: &str) -> Vec<&'static str> {
    match label {
        "method" => vec!["cached", "local", "remote"],
        "reason" => REASONS.to_vec(),
        "endpoint" => vec!["authenticate", "revoke", "jwks", "policy", "org_policy"],
        "result" => vec![
            "ok",
            "session_not_found",
            "denied",
            "client_error",
            "rate_limited",
            "server_error",
            "timeout",
            "unreachable",
            "invalid_response",
        ],
        "cache" => vec![
            "verified_tokens",
            "revocations",
            "org_policies",
            "gone_credentials",
            "confirmed_tokens",
        ],
        other => panic!("unexpected label {other}"),
    }
}

const REASONS: [&str; 13] = [
    "missing_credentials",
    "invalid_credentials",
    "invalid_token",
    "session_expired",
    "session_revoked",
    "caller_not_accepted",
    "stytch_unavailable",
    "tenancy_mismatch",
    "permission_denied",
    "insufficient_scope",
    "layer_missing",
    "custom_claims_mismatch",
    "misconfigured",
];

/// Requests of every kind, a call of each endpoint and a failing one: every name is
/// published, with the labels of the table and the values `StytchAuth::metrics`
/// reads, and no label carries a token, an id or a URL.
#[tokio::test]
async fn requests_and_calls_are_published_by_method_reason_endpoint_and_result() {
    let (snapshotter, _local) = recording();
    let mut recorded = Recorded::default();

    let f = fixture().await;
    let app = app(&f.auth);
    f.auth.warm_up().await.expect("the keys");
    let jwt = jwt_cookie(&f.session.session_jwt);
    // Local, then three times from the cache.
    for _ in 0..4 {
        assert_eq!(get_with(&app, "/me", &jwt).await.status, StatusCode::OK);
    }
    // No credentials; a JWT that is not one.
    assert_eq!(
        send(&app, "GET", "/me", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let bad = get_with(&app, "/me", &jwt_cookie("aaa.bbb.ccc")).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    // A session token: Stytch confirms it (and the cookies are renewed).
    let token = cookies(None, Some(&f.session.session_token));
    assert_eq!(get_with(&app, "/me", &token).await.status, StatusCode::OK);
    // A made-up session token: Stytch does not know it.
    let made_up = cookies(None, Some("made-up-session-token-0000000000000000000000"));
    let gone = get_with(&app, "/me", &made_up).await;
    assert_eq!(gone.reason(), "session_revoked");
    // Stytch failing.
    f.emu.inject_fault(
        Endpoint::Authenticate,
        Fault::Status {
            status: 500,
            times: 1,
        },
    );
    let other = f.emu.create_session(&f.member);
    let failing = get_with(&app, "/me", &cookies(None, Some(&other.session_token))).await;
    assert_eq!(failing.status, StatusCode::SERVICE_UNAVAILABLE);
    // A guarded route: the policies are fetched, and "editor" is not allowed.
    let denied = send(&app, "POST", "/documents", Some(&jwt)).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    // A logout (another session): revoked here and at Stytch.
    let leaving = f.emu.create_session(&f.member);
    let out = send(
        &app,
        "POST",
        "/logout",
        Some(&jwt_cookie(&leaving.session_jwt)),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);

    f.auth.publish_metrics();
    recorded.take(&snapshotter);
    let snapshot = f.auth.metrics();

    // Members authenticated, by method.
    let auths = "axum_stytch_authentications_total";
    // `/me` four times, then `/documents` (cached); the logout's own JWT (local).
    assert_eq!(recorded.counter(auths, &[("method", "cached")]), 4);
    assert_eq!(recorded.counter(auths, &[("method", "local")]), 2);
    assert_eq!(recorded.counter(auths, &[("method", "remote")]), 1);
    // Failures, by reason: every reason has its series (zeros included).
    let failures = "axum_stytch_auth_failures_total";
    let reasons: Vec<&str> = snapshot.failures().map(|(r, _)| r.as_str()).collect();
    assert_eq!(reasons, REASONS, "the table's reasons are the snapshot's");
    for (reason, expected) in snapshot.failures() {
        assert_eq!(
            recorded.counter(failures, &[("reason", reason.as_str())]),
            expected,
            "{reason}"
        );
    }
    assert_eq!(
        recorded.counter(failures, &[("reason", "missing_credentials")]),
        1
    );
    assert_eq!(
        recorded.counter(failures, &[("reason", "invalid_token")]),
        1
    );
    assert_eq!(
        recorded.counter(failures, &[("reason", "session_revoked")]),
        1
    );
    assert_eq!(
        recorded.counter(failures, &[("reason", "stytch_unavailable")]),
        1
    );
    assert_eq!(
        recorded.counter(failures, &[("reason", "permission_denied")]),
        1
    );
    // The other counters, as the snapshot reads them.
    for (name, value) in [
        (
            "axum_stytch_jwt_verifications_total",
            snapshot.local_verifications,
        ),
        (
            "axum_stytch_coalesced_authentications_total",
            snapshot.coalesced_authentications,
        ),
        (
            "axum_stytch_unverified_authentications_refused_total",
            snapshot.unverified_authentications_refused,
        ),
        ("axum_stytch_session_renewals_total", snapshot.renewals),
        ("axum_stytch_jwks_fetches_total", snapshot.jwks_fetches),
        (
            "axum_stytch_jwks_fetch_failures_total",
            snapshot.jwks_fetch_failures,
        ),
        ("axum_stytch_policy_fetches_total", snapshot.policy_fetches),
        (
            "axum_stytch_policy_fetch_failures_total",
            snapshot.policy_fetch_failures,
        ),
        (
            "axum_stytch_revocations_lost_total",
            snapshot.revocations_lost,
        ),
    ] {
        assert_eq!(recorded.counter(name, &[]), value, "{name}");
    }
    assert_eq!(snapshot.local_verifications, 2);
    assert_eq!(snapshot.renewals, 1);
    assert_eq!(snapshot.jwks_fetches, 1);
    assert_eq!(snapshot.policy_fetches, 2);

    // Calls to Stytch, by endpoint and result, each timed.
    let calls = "axum_stytch_api_requests_total";
    let took = "axum_stytch_api_request_duration_seconds";
    for (endpoint, result, n) in [
        ("jwks", "ok", 1),
        ("authenticate", "ok", 1),
        ("authenticate", "session_not_found", 1),
        ("authenticate", "server_error", 1),
        ("policy", "ok", 1),
        ("org_policy", "ok", 1),
        ("revoke", "ok", 1),
    ] {
        let labels = [("endpoint", endpoint), ("result", result)];
        assert_eq!(recorded.counter(calls, &labels), n, "{labels:?}");
        assert_eq!(recorded.samples(took, &labels), n as usize, "{labels:?}");
    }
    // The emulator's clock stands still: every call took no time by it.
    assert!(recorded.histograms.values().flatten().all(|s| *s == 0.0));

    // The caches' sizes.
    let entries = "axum_stytch_cache_entries";
    for (cache, size) in [
        // The first session's JWT (the logged-out one's was dropped).
        ("verified_tokens", 1.0),
        ("revocations", 1.0),
        ("org_policies", 1.0),
        ("gone_credentials", 1.0),
        ("confirmed_tokens", 1.0),
    ] {
        assert_eq!(
            recorded.gauge(entries, &[("cache", cache)]),
            size,
            "{cache}"
        );
    }

    // Names in Prometheus's conventions, each described with its unit; labels from
    // their fixed sets, never a credential, an id or a URL.
    let secrets = [
        f.session.session_jwt.as_str(),
        f.session.session_token.as_str(),
        f.session.member_session_id.as_str(),
        other.session_token.as_str(),
        leaving.session_jwt.as_str(),
        f.member.as_str(),
        f.org.as_str(),
        "made-up",
    ];
    let base_url = f.emu.base_url();
    let mut names = 0;
    for (kind, (name, labels)) in recorded.all() {
        names += 1;
        assert!(name.starts_with("axum_stytch_"), "{name}");
        let (unit, description) = recorded
            .described
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not described"));
        assert!(!description.is_empty(), "{name}");
        match kind {
            MetricKind::Counter => {
                assert!(name.ends_with("_total"), "{name}");
                assert_eq!(*unit, Some(Unit::Count), "{name}");
            }
            MetricKind::Histogram => {
                assert!(name.ends_with("_seconds"), "{name}");
                assert_eq!(*unit, Some(Unit::Seconds), "{name}");
            }
            MetricKind::Gauge => assert_eq!(*unit, Some(Unit::Count), "{name}"),
        }
        for (key, value) in labels {
            assert!(
                allowed(key).contains(&value.as_str()),
                "{name}: {key}={value}"
            );
            for secret in secrets.iter().chain([&base_url.as_str()]) {
                assert!(!value.contains(secret), "{name}: {key}={value}");
            }
        }
    }
    assert!(names > 30, "{names} series");
}

/// The layer publishes by itself at most once a second, by its clock's monotonic
/// reading, when a request's count reaches a multiple of 16: not before the second
/// has passed, and then without being asked.
#[tokio::test]
async fn the_layer_publishes_by_itself_once_a_second_of_its_clock() {
    let (snapshotter, _local) = recording();
    let mut recorded = Recorded::default();

    let f = fixture().await;
    let app = app(&f.auth);
    // The JWKS call ends: the first publication (zeros), on the runtime.
    f.auth.warm_up().await.expect("the keys");
    let cached = || recorded_counter(&snapshotter, "axum_stytch_authentications_total", "cached");
    wait_until("the first publication", || cached().is_some()).await;
    recorded.take(&snapshotter);

    // 40 requests within the same second: checked at the 16th and 32nd, not due.
    let jwt = jwt_cookie(&f.session.session_jwt);
    for _ in 0..40 {
        assert_eq!(get_with(&app, "/me", &jwt).await.status, StatusCode::OK);
    }
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    recorded.take(&snapshotter);
    let auths = "axum_stytch_authentications_total";
    assert_eq!(recorded.counter(auths, &[("method", "cached")]), 0);
    assert_eq!(f.auth.metrics().cache_hits, 39);

    // A second later by the layer's clock, the 48th cache hit is checked: due.
    f.emu.clock().advance(Duration::from_secs(1));
    for _ in 0..9 {
        assert_eq!(get_with(&app, "/me", &jwt).await.status, StatusCode::OK);
    }
    let mut published = 0;
    wait_until("a publication", || {
        recorded.take(&snapshotter);
        published = recorded.counter(auths, &[("method", "cached")]);
        published > 0
    })
    .await;
    // One local verification and 48 cache hits: all of them, published.
    assert_eq!(published, 48);
    assert_eq!(recorded.counter(auths, &[("method", "local")]), 1);
    assert_eq!(
        recorded.gauge("axum_stytch_cache_entries", &[("cache", "verified_tokens")]),
        1.0
    );
}

/// A counter's value in a snapshot taken now (`None`: not registered yet).
fn recorded_counter(snapshotter: &Snapshotter, name: &str, method: &str) -> Option<u64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find_map(|(key, _, _, value)| {
            let (_, key) = key.into_parts();
            let labelled = key
                .labels()
                .any(|l| l.key() == "method" && l.value() == method);
            match value {
                DebugValue::Counter(n) if key.name() == name && labelled => Some(n),
                _ => None,
            }
        })
}

/// Machine tokens count as callers, verified here then from the cache, and their
/// refusals under their reasons: a scope the token lacks, a member-only route.
#[tokio::test]
async fn machine_tokens_are_counted_as_callers_by_method_and_reason() {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use axum_stytch::{AuthenticatedMember, M2mCaller, RequireScope};

    let (snapshotter, _local) = recording();
    let mut recorded = Recorded::default();

    let f = fixture_with(|b| b.m2m_tokens(true)).await;
    let app = Router::new()
        .route(
            "/read",
            get(|c: M2mCaller| async move { c.client_id().to_owned() })
                .route_layer(RequireScope::new("read:documents")),
        )
        .route(
            "/write",
            get(|| async { "written" }).route_layer(RequireScope::new("write:documents")),
        )
        .route(
            "/me",
            get(|m: AuthenticatedMember| async move { m.member_id().to_owned() }),
        )
        .layer(f.auth.layer());
    f.auth.warm_up().await.expect("the keys");
    let client = f.emu.create_m2m_client(&["read:documents"]);
    let token = f.emu.mint_m2m_token(&client.client_id, None);
    let call = |path: &'static str| {
        let request = http::Request::get(path)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .expect("a request");
        send_request(&app, request)
    };
    assert_eq!(call("/read").await.status, StatusCode::OK);
    assert_eq!(call("/read").await.status, StatusCode::OK);
    assert_eq!(call("/write").await.reason(), "insufficient_scope");
    assert_eq!(call("/me").await.reason(), "caller_not_accepted");
    // A machine token in a session cookie is not taken: an `invalid_token`, not an
    // authentication, however valid (and however often it has been seen).
    let in_a_cookie = get_with(&app, "/read", &jwt_cookie(&token)).await;
    assert_eq!(in_a_cookie.reason(), "invalid_token");

    f.auth.publish_metrics();
    recorded.take(&snapshotter);
    let auths = "axum_stytch_authentications_total";
    // Verified once here; then from the cache (the second `/read`, `/write`, `/me`).
    assert_eq!(recorded.counter(auths, &[("method", "local")]), 1);
    assert_eq!(recorded.counter(auths, &[("method", "cached")]), 3);
    assert_eq!(recorded.counter(auths, &[("method", "remote")]), 0);
    let failures = "axum_stytch_auth_failures_total";
    for (reason, expected) in [
        ("insufficient_scope", 1),
        ("caller_not_accepted", 1),
        ("invalid_token", 1),
    ] {
        assert_eq!(
            recorded.counter(failures, &[("reason", reason)]),
            expected,
            "{reason}"
        );
    }
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 0);
}
