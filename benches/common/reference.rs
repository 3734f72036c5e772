//! The hand-written middlewares axum-stytch is compared with, shared by the load
//! harness and the instruction counts: what an application writes by hand with
//! `jsonwebtoken`, the per-request floor with aws-lc-rs directly, and that floor with
//! a cache of verified tokens (our version of the issue's "hand-written middleware + a
//! cache of already-verified tokens"), and axum's own `Extension` layer handing the
//! handler a member verified beforehand.
//!
//! Each app is prepared with `with_state(())`, as `axum::serve` prepares a `Router` and
//! as `benches/common`'s apps are: the harness serves them through
//! `axum::ServiceExt::into_make_service`, which does not, and an unprepared `Router`
//! turns its handler into a service on every request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header::COOKIE};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::{BODY, Fixture};

/// Requests a hand-written middleware let through (after a verification, or from its
/// cache) and refused.
#[derive(Clone, Default)]
pub struct HandCounters {
    pub verified: Arc<AtomicU64>,
    pub hits: Arc<AtomicU64>,
    pub rejected: Arc<AtomicU64>,
}

/// The hand-written apps, with their counters.
pub struct References {
    /// `jsonwebtoken::decode` on every request.
    pub jsonwebtoken: Router,
    pub jsonwebtoken_counters: HandCounters,
    /// aws-lc-rs on a key parsed once per `kid`: the floor.
    pub aws_lc_direct: Router,
    pub aws_lc_direct_counters: HandCounters,
    /// `aws_lc_direct` behind a map of verified tokens: our version of the issue's
    /// "hand-written middleware + a cache of already-verified tokens", written the usual way
    /// (`from_fn`, the `Cookie` header split at every `;`).
    pub aws_lc_cached: Router,
    pub aws_lc_cached_counters: HandCounters,
    /// `Router::layer(Extension(member))`, axum's own layer for handing a value to
    /// handlers: no cookie read, no lookup, the repeated token's claims verified once
    /// at start-up and cloned into every request.
    pub extension_only: Router,
}

impl References {
    /// The apps for `fixture`'s project. `exp` is checked against the system clock
    /// with `leeway_secs` (the emulator's clock is frozen while the system's runs on).
    pub async fn new(fixture: &Fixture, leeway_secs: u64) -> References {
        let jwks: JwkSet = fixture.jwks().await;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[fixture.emulator.project_id()]);
        validation.set_issuer(&[fixture.emulator.issuer()]);
        validation.leeway = leeway_secs;
        let direct = DirectState {
            keys: Arc::new(parse_keys(&jwks)),
            issuer: Arc::from(fixture.emulator.issuer()),
            audience: Arc::from(fixture.emulator.project_id()),
            leeway_secs,
            counters: HandCounters::default(),
        };
        let member = Arc::new(
            verify_direct(&direct, fixture.repeated()).expect("the repeated token verifies"),
        );
        let cached = CachedState {
            direct: DirectState {
                counters: HandCounters::default(),
                ..direct.clone()
            },
            verified: Arc::new(RwLock::new(VerifiedTokens::default())),
        };
        let hand = HandState {
            jwks: Arc::new(jwks),
            validation: Arc::new(validation),
            counters: HandCounters::default(),
        };
        References {
            jsonwebtoken_counters: hand.counters.clone(),
            jsonwebtoken: Router::new()
                .route("/", get(hello_hand))
                .layer(middleware::from_fn_with_state(hand, hand_written))
                .with_state(()),
            aws_lc_direct_counters: direct.counters.clone(),
            aws_lc_direct: Router::new()
                .route("/", get(hello_hand))
                .layer(middleware::from_fn_with_state(direct, aws_lc_direct))
                .with_state(()),
            aws_lc_cached_counters: cached.direct.counters.clone(),
            aws_lc_cached: Router::new()
                .route("/", get(hello_hand))
                .layer(middleware::from_fn_with_state(cached, aws_lc_cached))
                .with_state(()),
            extension_only: Router::new()
                .route("/", get(hello_hand))
                .layer(axum::Extension(HandMember(member)))
                .with_state(()),
        }
    }
}

#[derive(Clone)]
struct HandState {
    jwks: Arc<JwkSet>,
    validation: Arc<Validation>,
    counters: HandCounters,
}

#[derive(Clone)]
struct DirectState {
    keys: Arc<HashMap<String, ParsedPublicKey>>,
    issuer: Arc<str>,
    audience: Arc<str>,
    leeway_secs: u64,
    counters: HandCounters,
}

/// Verified tokens by the whole token, with foldhash (std's SipHash would cost more
/// than the rest of a cache hit on a 1.5 KB key).
type VerifiedTokens = HashMap<Box<str>, Arc<HandClaims>, foldhash::fast::RandomState>;

/// At most this many verified tokens; a full map is emptied (the simplest bound).
const CACHED_TOKENS: usize = 10_000;

#[derive(Clone)]
struct CachedState {
    direct: DirectState,
    verified: Arc<RwLock<VerifiedTokens>>,
}

#[derive(serde::Deserialize)]
struct DirectHeader<'a> {
    alg: &'a str,
    kid: &'a str,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct HandClaims {
    iss: String,
    aud: Vec<String>,
    exp: u64,
    sub: String,
    #[serde(rename = "https://stytch.com/session")]
    session: HandSession,
    #[serde(rename = "https://stytch.com/organization")]
    organization: HandOrganization,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct HandSession {
    id: String,
    #[serde(default)]
    roles: Vec<String>,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct HandOrganization {
    organization_id: String,
}

#[derive(Clone)]
struct HandMember(#[allow(dead_code)] Arc<HandClaims>);

fn unix_now() -> Option<u64> {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

fn session_jwt_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix("stytch_session_jwt="))
}

/// What an application writes by hand with `jsonwebtoken`: on every request, the JWT
/// from the cookie, its `kid`, a `DecodingKey` from that JWK, and `decode` with RS256,
/// audience, issuer and expiry checks.
async fn hand_written(State(state): State<HandState>, req: Request, next: Next) -> Response {
    let verified = session_jwt_cookie(req.headers()).and_then(|jwt| {
        let header = jsonwebtoken::decode_header(jwt).ok()?;
        let jwk = state.jwks.find(header.kid.as_deref()?)?;
        let key = DecodingKey::from_jwk(jwk).ok()?;
        jsonwebtoken::decode::<HandClaims>(jwt, &key, &state.validation).ok()
    });
    let claims = verified.map(|data| (Arc::new(data.claims), Via::Verified));
    admit(&state.counters, claims, req, next).await
}

/// The floor for verifying every request: aws-lc-rs RS256 with a key parsed once per
/// `kid`, the header and claims decoded once into small structs, `iss`/`aud`/`exp`
/// checked. No cache, no remote fallback, no rich member.
async fn aws_lc_direct(State(state): State<DirectState>, req: Request, next: Next) -> Response {
    let verified = session_jwt_cookie(req.headers()).and_then(|jwt| verify_direct(&state, jwt));
    let claims = verified.map(|claims| (Arc::new(claims), Via::Verified));
    admit(&state.counters, claims, req, next).await
}

/// A hand-written cache of verified tokens: [`aws_lc_direct`] behind a map of the tokens it
/// verified, keyed by the whole token; a hit checks `exp` only. No revocation, no size
/// accounting beyond emptying a full map.
async fn aws_lc_cached(State(state): State<CachedState>, req: Request, next: Next) -> Response {
    let verified = session_jwt_cookie(req.headers()).and_then(|jwt| {
        let hit = state.verified.read().ok()?.get(jwt).cloned();
        if let Some(claims) = hit {
            let fresh = claims.exp + state.direct.leeway_secs > unix_now()?;
            return fresh.then_some((claims, Via::Cache));
        }
        let claims = Arc::new(verify_direct(&state.direct, jwt)?);
        let mut verified = state.verified.write().ok()?;
        if verified.len() >= CACHED_TOKENS {
            verified.clear();
        }
        verified.insert(jwt.into(), claims.clone());
        Some((claims, Via::Verified))
    });
    admit(&state.direct.counters, verified, req, next).await
}

/// aws-lc-rs RS256 on the key of the token's `kid`, then `iss`/`aud`/`exp`.
fn verify_direct(state: &DirectState, jwt: &str) -> Option<HandClaims> {
    let (signing_input, signature) = jwt.rsplit_once('.')?;
    let (header, payload) = signing_input.split_once('.')?;
    let header_json = URL_SAFE_NO_PAD.decode(header).ok()?;
    let header: DirectHeader<'_> = serde_json::from_slice(&header_json).ok()?;
    if header.alg != "RS256" {
        return None;
    }
    let key = state.keys.get(header.kid)?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    key.verify_sig(signing_input.as_bytes(), &signature).ok()?;
    let claims: HandClaims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    (claims.iss == *state.issuer
        && claims.aud.iter().any(|a| **a == *state.audience)
        && claims.exp + state.leeway_secs > unix_now()?)
    .then_some(claims)
}

/// How a hand-written middleware admitted a request.
enum Via {
    Verified,
    Cache,
}

/// Runs the handler with the member, or answers 401.
async fn admit(
    counters: &HandCounters,
    claims: Option<(Arc<HandClaims>, Via)>,
    mut req: Request,
    next: Next,
) -> Response {
    match claims {
        Some((claims, via)) => {
            let counter = match via {
                Via::Verified => &counters.verified,
                Via::Cache => &counters.hits,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            req.extensions_mut().insert(HandMember(claims));
            next.run(req).await
        }
        None => {
            counters.rejected.fetch_add(1, Ordering::Relaxed);
            StatusCode::UNAUTHORIZED.into_response()
        }
    }
}

fn parse_keys(jwks: &JwkSet) -> HashMap<String, ParsedPublicKey> {
    use jsonwebtoken::jwk::AlgorithmParameters;
    jwks.keys
        .iter()
        .filter_map(|jwk| {
            let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
                return None;
            };
            let n = URL_SAFE_NO_PAD.decode(&rsa.n).ok()?;
            let e = URL_SAFE_NO_PAD.decode(&rsa.e).ok()?;
            let key = RsaPublicKeyComponents { n: &n, e: &e }
                .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
                .ok()?;
            Some((jwk.common.key_id.clone()?, key))
        })
        .collect()
}

async fn hello_hand(_member: axum::Extension<HandMember>) -> &'static str {
    BODY
}
