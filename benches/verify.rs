//! Local verification through the `StytchAuthService` (the layer around a no-op
//! service, no router, no sockets), and the reference points it is compared with.
//!
//! * `layer/fresh_no_cache`: a distinct valid JWT every iteration, verified-token
//!   cache off (`token_cache_capacity(0)`): parse + RSA verify + claims + member.
//! * `layer/fresh_small_cache`: the same with a 64-entry cache while cycling through
//!   4,096 tokens: adds the cache lookup miss, insert and eviction a fresh token pays.
//! * `layer/cached`: the same JWT every iteration (cache hit, no RSA work).
//! * `reference/*`: what the layer is built from or competes with: one aws-lc-rs
//!   RS256 verification with a key parsed once, `jsonwebtoken` 11 `decode` (with the
//!   `DecodingKey` built per call from the JWK, as a hand-written middleware does, and
//!   with it built once), and parsing a JWT's header and claims without verifying.
//!
//! `cargo bench --bench verify`

mod common;

use std::cell::Cell;
use std::convert::Infallible;
use std::hint::black_box;

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderValue, Request, Response, header::COOKIE};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tower::{Layer as _, ServiceExt as _};

use common::Fixture;

const TOKENS: usize = 4096;
const SESSIONS: usize = 64;

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(rename = "https://stytch.com/session")]
    session: serde_json::Value,
    #[serde(rename = "https://stytch.com/organization")]
    organization: serde_json::Value,
}

fn request(cookie: &HeaderValue) -> Request<()> {
    let mut req = Request::new(());
    req.headers_mut().insert(COOKIE, cookie.clone());
    req
}

fn benches(c: &mut Criterion) {
    let rt = common::runtime();
    let fixture = rt.block_on(Fixture::new(SESSIONS, TOKENS));
    let cookies = fixture.cookie_values();
    let jwt_len = fixture.repeated().len();
    eprintln!(
        "{} distinct JWTs of ~{jwt_len} bytes; Cookie header {} bytes",
        cookies.len(),
        cookies[0].len()
    );

    let build = |capacity: usize| {
        let auth = rt.block_on(fixture.auth(capacity));
        let service = auth
            .layer()
            .layer(tower::service_fn(|_req: Request<()>| async {
                Ok::<_, Infallible>(Response::new(()))
            }));
        (auth, service)
    };

    let mut group = c.benchmark_group("layer");
    group.throughput(Throughput::Elements(1));
    for (name, capacity) in [("fresh_no_cache", 0), ("fresh_small_cache", 64)] {
        let (auth, service) = build(capacity);
        let next = Cell::new(0usize);
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let i = next.get();
                next.set((i + 1) % cookies.len());
                service.clone().oneshot(request(&cookies[i]))
            })
        });
        let m = auth.metrics();
        eprintln!(
            "layer/{name}: {} local verifications, {} cache hits, {} remote calls",
            m.local_verifications, m.cache_hits, m.remote_authentications
        );
        assert_eq!(
            m.remote_authentications, 0,
            "every token must verify locally"
        );
    }
    let (auth, service) = build(10_000);
    group.bench_function("cached", |b| {
        b.to_async(&rt)
            .iter(|| service.clone().oneshot(request(&cookies[0])))
    });
    let m = auth.metrics();
    eprintln!(
        "layer/cached: {} local verifications, {} cache hits",
        m.local_verifications, m.cache_hits
    );
    group.finish();

    // Reference points.
    let jwks: JwkSet = rt.block_on(fixture.jwks());
    let jwk: &Jwk = &jwks.keys[0];
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[fixture.emulator.project_id()]);
    validation.set_issuer(&[fixture.emulator.issuer()]);
    // jsonwebtoken checks exp/nbf against the system clock while the emulator's clock
    // is frozen (and ran ahead while minting): a wide leeway keeps the checks (and their
    // cost) without failing the tokens.
    validation.leeway = 3600;

    let jwt = fixture.repeated();
    let (signing_input, signature) = jwt.rsplit_once('.').expect("a JWT");
    let signature = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
    let key_der = {
        use jsonwebtoken::jwk::AlgorithmParameters;
        let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
            panic!("an RSA key")
        };
        (
            URL_SAFE_NO_PAD.decode(&rsa.n).expect("n"),
            URL_SAFE_NO_PAD.decode(&rsa.e).expect("e"),
        )
    };
    let parsed = RsaPublicKeyComponents {
        n: &key_der.0,
        e: &key_der.1,
    }
    .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
    .expect("a valid RSA key");

    let mut group = c.benchmark_group("reference");
    group.throughput(Throughput::Elements(1));
    group.bench_function("aws_lc_rs_verify_parsed_key", |b| {
        b.iter(|| {
            parsed
                .verify_sig(black_box(signing_input.as_bytes()), black_box(&signature))
                .expect("valid signature")
        })
    });
    group.bench_function("aws_lc_rs_verify_unparsed_key", |b| {
        b.iter(|| {
            let components = RsaPublicKeyComponents {
                n: &key_der.0,
                e: &key_der.1,
            };
            components
                .verify(
                    &RSA_PKCS1_2048_8192_SHA256,
                    black_box(signing_input.as_bytes()),
                    black_box(&signature),
                )
                .expect("valid signature")
        })
    });
    group.bench_function("jsonwebtoken_decode_key_per_call", |b| {
        b.iter(|| {
            let header = jsonwebtoken::decode_header(black_box(jwt)).expect("header");
            let kid = header.kid.expect("kid");
            let jwk = jwks.find(&kid).expect("known kid");
            let key = DecodingKey::from_jwk(jwk).expect("decoding key");
            jsonwebtoken::decode::<Claims>(jwt, &key, &validation).expect("valid token")
        })
    });
    let key = DecodingKey::from_jwk(jwk).expect("decoding key");
    group.bench_function("jsonwebtoken_decode_key_once", |b| {
        b.iter(|| jsonwebtoken::decode::<Claims>(black_box(jwt), &key, &validation).expect("ok"))
    });
    group.bench_function("parse_header_and_claims_unverified", |b| {
        b.iter(|| axum_stytch::internals::parse_token_unverified(black_box(jwt)).expect("parses"))
    });
    group.finish();
}

criterion_group!(verify, benches);
criterion_main!(verify);
