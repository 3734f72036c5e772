//! The full middleware round trip through an axum `Router` as a `tower::Service`
//! (`ServiceExt::oneshot`, no sockets): request in, handler taking
//! `AuthenticatedMember`, response out. Every request carries the same ~1.6 KB
//! browser `Cookie` header shape. The routers are prepared as `axum::serve` prepares
//! them (`with_state(())`, see `common::bare_app`).
//!
//! * `round_trip/bare`: the same router and handler without the layer or extractor.
//! * `round_trip/cached`: one JWT repeated (verified-token cache hit).
//! * `round_trip/fresh`: 4,096 distinct JWTs cycled with a 64-entry cache, so each
//!   one is verified (and inserted, evicting another).
//! * `round_trip/rbac_cached`: one JWT repeated on a `RequireAuthz` route (policy
//!   cached after the first request).
//! * `round_trip/rbac_cached_handler_layer`: `rbac_cached` with the guard applied to
//!   the handler (`Handler::layer`) instead of `route_layer`: the same check, without
//!   the second boxing that `route_layer` adds.
//! * `round_trip/rbac_cached_extractor`: the same permission checked by the
//!   handler's `Authorized<P>` extractor, with no guard layer.
//! * `round_trip/cached_identity_route_layer`: `cached` with a do-nothing
//!   `route_layer` (tower's `Identity`): what axum's per-route layer wrapping costs by
//!   itself, so `rbac_cached` minus this is the guard's own cost.
//!
//! `cargo bench --bench round_trip`

mod common;

use std::cell::Cell;

use axum::body::Body;
use axum::routing::get;
use axum::{Router, http::HeaderValue};
use axum_stytch::StytchAuth;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, StatusCode, header::COOKIE};
use tower::ServiceExt as _;

use common::Fixture;

const TOKENS: usize = 4096;
const SESSIONS: usize = 64;

fn request(cookie: &HeaderValue) -> Request<Body> {
    let mut req = Request::new(Body::empty());
    *req.uri_mut() = http::Uri::from_static("/");
    req.headers_mut().insert(COOKIE, cookie.clone());
    req
}

async fn call(app: &Router, cookie: &HeaderValue) {
    let response = app
        .clone()
        .oneshot(request(cookie))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
}

fn benches(c: &mut Criterion) {
    let rt = common::runtime();
    let fixture = rt.block_on(Fixture::new(SESSIONS, TOKENS));
    let cookies = fixture.cookie_values();
    let auth = |capacity: usize| -> StytchAuth { rt.block_on(fixture.auth(capacity)) };

    let bare = common::bare_app();
    let cached_auth = auth(10_000);
    let cached = common::member_app(&cached_auth);
    let fresh_auth = auth(64);
    let fresh = common::member_app(&fresh_auth);
    let rbac_auth = auth(10_000);
    let rbac = common::rbac_app(&rbac_auth);
    let rbac_handler = common::rbac_handler_app(&rbac_auth);
    let rbac_extractor = common::rbac_extractor_app(&rbac_auth);
    let identity = Router::new()
        .route(
            "/",
            get(common::hello_member).route_layer(tower::layer::util::Identity::new()),
        )
        .layer(cached_auth.layer())
        .with_state(());
    // Load the RBAC policy before measuring.
    rt.block_on(call(&rbac, &cookies[0]));

    let mut group = c.benchmark_group("round_trip");
    group.throughput(Throughput::Elements(1));
    group.bench_function("bare", |b| {
        b.to_async(&rt).iter(|| call(&bare, &cookies[0]))
    });
    group.bench_function("cached", |b| {
        b.to_async(&rt).iter(|| call(&cached, &cookies[0]))
    });
    let next = Cell::new(0usize);
    group.bench_function("fresh", |b| {
        b.to_async(&rt).iter(|| {
            let i = next.get();
            next.set((i + 1) % cookies.len());
            call(&fresh, &cookies[i])
        })
    });
    group.bench_function("rbac_cached", |b| {
        b.to_async(&rt).iter(|| call(&rbac, &cookies[0]))
    });
    group.bench_function("rbac_cached_handler_layer", |b| {
        b.to_async(&rt).iter(|| call(&rbac_handler, &cookies[0]))
    });
    group.bench_function("rbac_cached_extractor", |b| {
        b.to_async(&rt).iter(|| call(&rbac_extractor, &cookies[0]))
    });
    group.bench_function("cached_identity_route_layer", |b| {
        b.to_async(&rt).iter(|| call(&identity, &cookies[0]))
    });
    group.finish();

    for (name, auth) in [
        ("cached", &cached_auth),
        ("fresh", &fresh_auth),
        ("rbac_cached", &rbac_auth),
    ] {
        let m = auth.metrics();
        eprintln!(
            "round_trip/{name}: {} local verifications, {} cache hits, {} remote calls, {} policy fetches",
            m.local_verifications, m.cache_hits, m.remote_authentications, m.policy_fetches
        );
    }
}

criterion_group!(round_trip, benches);
criterion_main!(round_trip);
