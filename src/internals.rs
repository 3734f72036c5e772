//! Pure building blocks exposed for this crate's benchmarks and fuzz targets only.
//! Not part of the public API: no stability promise, hidden from the docs.

use http::HeaderMap;

use crate::credentials::{self, CredentialSettings};
use crate::rbac::Role;
use crate::rbac::decision::{Granting, Grants, decide};

/// Where the layer looks for credentials.
#[derive(Debug)]
pub struct Settings(CredentialSettings);

/// The default credential settings (cookie names, no bearer, 4096-byte cap).
pub fn default_credential_settings() -> Settings {
    Settings(CredentialSettings::new(
        "stytch_session_jwt".into(),
        "stytch_session".into(),
        false,
        crate::cookies::BROWSER_COOKIE_LIMIT,
    ))
}

/// Reads `(jwt, token)` from the headers, both validated (what the layer does on a
/// token-cache miss); `None` when the credentials are refused.
pub fn extract_credentials<'a>(
    headers: &'a HeaderMap,
    settings: &Settings,
) -> Option<(Option<&'a str>, Option<&'a str>)> {
    let creds = credentials::extract(headers, &settings.0).ok()?;
    let jwt = creds.jwt.map(|jwt| jwt.validate()).transpose().ok()?;
    let token = creds.token.map(|token| token.validate()).transpose().ok()?;
    Some((jwt, token))
}

/// Finds the credentials without checking their characters (what the layer does when
/// the JWT is in the verified-token cache): `(jwt length, token length)`; `None` when
/// the credentials are refused (oversized, repeated).
pub fn find_credentials(
    headers: &HeaderMap,
    settings: &Settings,
) -> Option<(Option<usize>, Option<usize>)> {
    let creds = credentials::extract(headers, &settings.0).ok()?;
    let len = |v: credentials::RawValue<'_>| v.as_bytes().len();
    Some((creds.jwt.map(len), creds.token.map(len)))
}

/// Parses a JWT's structure and header, and decodes its claims without verifying the
/// signature. Returns the `kid` when both succeed.
pub fn parse_token_unverified(token: &str) -> Option<String> {
    let parsed = crate::jwt::verify::Token::parse(token, None).ok()?;
    parsed.claims::<crate::jwt::session::SessionClaims>().ok()?;
    Some(parsed.kid.to_string())
}

/// The layer's per-request counters, as a cache hit bumps them (`benches/counters.rs`).
#[derive(Debug, Default)]
pub struct Counters(crate::metrics::Metrics);

impl Counters {
    /// What a cache hit at the monotonic reading `now` counts (with the `metrics`
    /// feature, including its check for a publication due).
    #[inline]
    pub fn cache_hit(&self, now: std::time::Instant) {
        self.0.cache_hit(now);
    }

    /// The cache hits counted, summed over the threads' stripes.
    pub fn cache_hits(&self) -> u64 {
        self.0.snapshot(0).cache_hits
    }

    /// How many stripes the counters have (twice the available parallelism).
    pub fn stripes(&self) -> usize {
        self.0.stripes()
    }
}

/// Roles compiled for decisions.
#[derive(Debug)]
pub struct Roles(Grants);

impl Roles {
    /// Compiles `roles`.
    pub fn new(roles: &[Role]) -> Self {
        Self(Grants::of_roles(roles))
    }
}

/// The local RBAC decision: how many of the session's roles grant the permission,
/// or `None` when denied (the decision the guards make, without building a verdict).
pub fn decide_locally(
    project: &Roles,
    member_org: &str,
    checked_org: &str,
    session_roles: &[String],
    resource: &str,
    action: &str,
) -> Option<usize> {
    let granting = decide(
        &project.0,
        None,
        member_org,
        checked_org,
        session_roles,
        resource,
        action,
    )
    .ok()?;
    Some(match granting {
        Granting::Mask(mask) => mask.count_ones() as usize,
        Granting::Names(names) => names.len(),
    })
}
