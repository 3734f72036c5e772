//! [`StytchAuth`]: the shared engine behind the layer, the extractors and the guards.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use http::HeaderMap;
use tracing::Instrument as _;

use crate::client::wire::{AuthenticateParams, AuthenticateResponse, SessionCredential};
use crate::client::{ClientError, ClientSettings, Endpoint, RetryAfter, StytchClient};
use crate::clock::{Reading, SharedClock};
use crate::config::{ConfigError, StytchAuthBuilder};
use crate::cookies::{CookieSettings, SessionCookies};
use crate::credentials::{self, CredentialSettings};
use crate::jwt::claims::SessionClaims;
use crate::jwt::jwks::{JwksCache, JwksSettings, KeyError, OnRetired};
use crate::jwt::keys::KeySet;
use crate::jwt::known_headers::KnownHeaders;
use crate::jwt::verify::{ClaimRules, Rejected, Standing, Token};
use crate::layer::StytchAuthLayer;
use crate::member::{AuthMethod, AuthenticatedMember, MemberData};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::rbac::PolicyCache;
use crate::rbac::resource_action::ResourceAction;
use crate::rejection::Failure;
use crate::rejection::{ErrorHandler, Reason};
use crate::request_auth::{AuthContext, RemoteFailure, RequestAuth, session_gone};
use crate::token_cache::{Lookup, TokenCache};
use crate::unverified::{Refused, UnverifiedBudget, UnverifiedSettings};
use crate::util::permits::{Permit, Permits};
use crate::util::recent_set::RecentSet;
use crate::util::single_flight::SingleFlight;
use crate::util::warn_limiter::WarnLimiter;

type RemoteResult = Result<Arc<AuthenticateResponse>, Arc<ClientError>>;

/// How long a logged-out session, or a credential Stytch said is gone, is remembered
/// (within `revocation_capacity`; when full, the oldest go first).
const REMEMBERED_FOR: Duration = Duration::from_secs(3600);

/// Stytch B2B session authentication and RBAC for axum.
///
/// Build one per process with [`StytchAuth::builder`] or [`StytchAuth::from_env`],
/// install [`StytchAuth::layer`] on the router, and take
/// [`AuthenticatedMember`] in handlers. Cheap to clone: clones share one HTTP client,
/// the JWKS, the verified-token cache, the policy cache and the counters.
///
/// # Examples
///
/// ```
/// use axum::{Router, routing::get};
/// use axum_stytch::{AuthenticatedMember, StytchAuth};
///
/// async fn me(member: AuthenticatedMember) -> String {
///     member.member_id().to_owned()
/// }
///
/// # fn build() -> Result<Router, axum_stytch::ConfigError> {
/// let auth = StytchAuth::builder("project-test-00000000-0000-0000-0000-000000000000", "secret-test-x")
///     .build()?;
/// let app: Router = Router::new().route("/me", get(me)).layer(auth.layer());
/// # Ok(app) }
/// # build().unwrap();
/// ```
#[derive(Clone)]
pub struct StytchAuth {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) project_id: String,
    pub(crate) client: StytchClient,
    pub(crate) clock: SharedClock,
    pub(crate) rules: ClaimRules,
    pub(crate) credentials: CredentialSettings,
    pub(crate) cookies: CookieSettings,
    pub(crate) session_duration_minutes: Option<u32>,
    pub(crate) jwks: Arc<JwksCache>,
    /// Header segments of validly signed JWTs, parsed once.
    headers: KnownHeaders,
    /// Verified JWTs, by the whole token.
    tokens: Option<Arc<TokenCache>>,
    /// Sessions logged out through this instance, by member_session_id.
    revoked: RecentSet<String>,
    /// Session tokens and stale JWTs Stytch answered "not found" for: asked once only.
    dead: RecentSet<Arc<str>>,
    remote: SingleFlight<AuthenticateParams, RemoteResult>,
    /// After a 429, for its `Retry-After`, no `sessions/authenticate` call is made.
    remote_backoff: RetryAfter,
    /// The clock-behind warning.
    clock_warning: WarnLimiter,
    /// The warning about a session credential sent twice.
    duplicate_warning: WarnLimiter,
    /// The warning about validly signed JWTs of an issuer not configured.
    issuer_warning: WarnLimiter,
    /// The error about a guard naming a path parameter its route does not have.
    route_error: WarnLimiter,
    /// Failed `sessions/authenticate` calls: the warning (Stytch unavailable, a
    /// credential refused) and the error (the secret or base URL wrong).
    remote_warning: WarnLimiter,
    remote_error: WarnLimiter,
    /// One permit per `sessions/authenticate` call in flight.
    authentications: Arc<Permits>,
    /// The calls for session tokens never confirmed: their own rate and permits.
    unverified: UnverifiedBudget,
    /// The warning about unverified calls refused for want of budget.
    unverified_warning: WarnLimiter,
    /// The warning about calls refused for want of a permit.
    saturated_warning: WarnLimiter,
    pub(crate) policy: PolicyCache,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) error_handler: Option<ErrorHandler>,
}

impl fmt::Debug for StytchAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StytchAuth")
            .field("project_id", &self.inner.project_id)
            .field("client", &self.inner.client)
            .finish_non_exhaustive()
    }
}

/// What the layer could decide without waiting.
pub(crate) enum Begin {
    Ready(AuthContext),
    /// The JWT needs keys that are not loaded yet.
    NeedsKeys(AwaitingKeys),
}

/// A JWT waiting for the keys of its `kid`.
pub(crate) struct AwaitingKeys {
    jwt: String,
    source: credentials::Source,
    kid: Arc<str>,
}

impl StytchAuth {
    /// A builder for the project's id and secret (from the Stytch dashboard).
    pub fn builder(project_id: impl Into<String>, secret: impl Into<String>) -> StytchAuthBuilder {
        StytchAuthBuilder::new(project_id, secret)
    }

    /// Builds from `STYTCH_PROJECT_ID`, `STYTCH_SECRET` and optional `STYTCH_BASE_URL`,
    /// with every other setting at its default. Use [`StytchAuthBuilder::from_env`] to
    /// change more.
    pub fn from_env() -> Result<Self, ConfigError> {
        StytchAuthBuilder::from_env()?.build()
    }

    pub(crate) fn from_builder(b: StytchAuthBuilder) -> Result<Self, ConfigError> {
        let endpoint = Endpoint::resolve(&b.project_id, b.base_url.as_deref())?;
        let client = StytchClient::new(
            &b.project_id,
            &b.secret,
            &endpoint,
            &ClientSettings {
                connect_timeout: b.connect_timeout,
                request_timeout: b.request_timeout,
            },
        )?;
        let metrics = Arc::new(Metrics::default());
        let mut issuers = vec![format!("stytch.com/{}", b.project_id)];
        issuers.extend(endpoint.custom_issuer.clone());
        // Entries expire by the injected clock, checked on every read.
        let tokens = (b.token_cache_capacity > 0 && !b.max_token_age.is_zero())
            .then(|| Arc::new(TokenCache::new(b.token_cache_capacity)));
        // A key Stytch retired takes the tokens it verified out of the cache.
        let on_retired: OnRetired = match &tokens {
            Some(tokens) => {
                let tokens = Arc::clone(tokens);
                Box::new(move |retired| tokens.remove_keys(retired))
            }
            None => Box::new(|_| {}),
        };
        let jwks = JwksCache::new(
            client.clone(),
            b.clock.clone(),
            JwksSettings {
                refresh_interval: b.jwks_refresh_interval,
                cooldown: b.jwks_refresh_cooldown,
                max_stale: b.jwks_max_stale,
            },
            Arc::clone(&metrics),
            on_retired,
        );
        let revoked = RecentSet::new(b.revocation_capacity, REMEMBERED_FOR);
        let dead = RecentSet::new(b.revocation_capacity, REMEMBERED_FOR);
        let policy = PolicyCache::new(
            client.clone(),
            b.clock.clone(),
            b.policy_refresh_interval,
            b.policy_grace,
            b.org_policy_capacity,
            Arc::clone(&metrics),
        );
        let remote = SingleFlight::new(client.call_deadline());
        let authentications =
            Permits::new(b.max_concurrent_authentications, client.call_deadline());
        let unverified = UnverifiedBudget::new(
            UnverifiedSettings {
                per_second: b.unverified_per_second,
                concurrent: b.max_concurrent_unverified,
                remembered: b.token_cache_capacity.max(1_000),
            },
            client.call_deadline(),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                project_id: b.project_id.clone(),
                client,
                clock: b.clock,
                rules: ClaimRules {
                    project_id: b.project_id,
                    issuers,
                    leeway_secs: b.leeway.as_secs(),
                    max_token_age_secs: b.max_token_age.as_secs(),
                },
                credentials: CredentialSettings::new(
                    b.jwt_cookie.clone(),
                    b.token_cookie.clone(),
                    b.bearer,
                    b.max_cookie_size,
                ),
                cookies: CookieSettings {
                    jwt_name: b.jwt_cookie,
                    token_name: b.token_cookie,
                    path: b.cookie_path,
                    domain: b.cookie_domain,
                    secure: b.cookie_secure,
                    http_only: b.cookie_http_only,
                    same_site: b.cookie_same_site,
                },
                session_duration_minutes: b
                    .session_duration
                    .and_then(|d| u32::try_from(d.as_secs() / 60).ok()),
                jwks,
                headers: KnownHeaders::new(),
                tokens,
                revoked,
                dead,
                remote,
                remote_backoff: RetryAfter::default(),
                clock_warning: WarnLimiter::default(),
                duplicate_warning: WarnLimiter::default(),
                issuer_warning: WarnLimiter::default(),
                route_error: WarnLimiter::default(),
                remote_warning: WarnLimiter::default(),
                remote_error: WarnLimiter::default(),
                authentications,
                unverified,
                unverified_warning: WarnLimiter::default(),
                saturated_warning: WarnLimiter::default(),
                policy,
                metrics,
                error_handler: b.error_handler,
            }),
        })
    }

    /// The Tower layer that authenticates every request (see the crate docs for the
    /// request flow). It never rejects by itself: extractors and guards decide.
    pub fn layer(&self) -> StytchAuthLayer {
        StytchAuthLayer::new(self.clone())
    }

    /// The project id.
    pub fn project_id(&self) -> &str {
        &self.inner.project_id
    }

    /// Fetches the JWKS now instead of on the first request, whatever the cooldowns.
    /// On failure, requests that need the keys try again once `jwks_refresh_cooldown`
    /// has passed.
    ///
    /// Call it before reporting ready (a readiness probe), and call it again until it
    /// works: otherwise one failed fetch on the first request answers 503 to every
    /// request that needs the keys for the whole cooldown (30 s by default).
    ///
    /// # Errors
    ///
    /// Why there are no keys: Stytch unreachable or slow, its error, or a JWKS without
    /// a usable RS256 signing key ([`ClientError::UnexpectedResponse`]). A fetch in
    /// progress is joined; when that one did not ask Stytch (it was within a
    /// cooldown), the warm-up asks on its own, and only a runtime shutting down leaves
    /// it without an answer ([`ClientError::Transport`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn start(auth: axum_stytch::StytchAuth) {
    /// while let Err(error) = auth.warm_up().await {
    ///     eprintln!("Stytch's keys are not loaded yet: {error}");
    ///     tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    /// }
    /// # }
    /// ```
    pub async fn warm_up(&self) -> Result<(), ClientError> {
        self.inner.jwks.refresh().await
    }

    /// The layer's counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.metrics.snapshot(self.inner.remote.joined())
    }

    /// `Set-Cookie` headers that store a session after a login, e.g. with the
    /// `session_jwt`, `session_token` and `member_session.expires_at` of the official
    /// `stytch` crate's magic-link or password authenticate response. The cookies carry
    /// the configured attributes and expire with the session. An empty value, or one
    /// a cookie cannot hold (not visible ASCII, or with `;`, `,`, `"` or `\`), is not
    /// written (and is logged as a warning).
    pub fn session_cookies(
        &self,
        session_jwt: &str,
        session_token: &str,
        expires_at: SystemTime,
    ) -> SessionCookies {
        SessionCookies::new(
            self.inner
                .cookies
                .set(session_jwt, session_token, expires_at),
        )
    }

    /// Ends the member's session: revokes it at Stytch, refuses its JWTs on this
    /// instance at once (other instances accept an already issued JWT until it is
    /// `max_token_age` old), and returns the `Set-Cookie` headers that clear both
    /// cookies. A session Stytch no longer knows (`404 session_not_found`) counts as
    /// logged out. The call to Stytch runs to its end on the runtime even when the
    /// future is dropped before (a client that hangs up during its logout), unless the
    /// runtime itself shuts down first (within `request_timeout` of such a logout).
    ///
    /// # Errors
    ///
    /// When Stytch cannot be reached or refuses the call. The session is refused on
    /// this instance anyway, but only for an hour (or until `revocation_capacity`
    /// newer logouts push it out), and other instances still accept it: retry the
    /// logout to end the session at Stytch. The browser's cookies are best cleared
    /// either way ([`clear_cookies`](Self::clear_cookies)).
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::extract::State;
    /// use axum::http::StatusCode;
    /// use axum::response::{IntoResponse, Response};
    /// use axum_stytch::{AuthenticatedMember, StytchAuth};
    ///
    /// async fn logout(State(auth): State<StytchAuth>, member: AuthenticatedMember) -> Response {
    ///     match auth.logout(&member).await {
    ///         Ok(cookies) => (cookies, StatusCode::NO_CONTENT).into_response(),
    ///         Err(error) => {
    ///             tracing::warn!(%error, "Stytch could not revoke the session");
    ///             (auth.clear_cookies(), StatusCode::BAD_GATEWAY).into_response()
    ///         }
    ///     }
    /// }
    /// ```
    pub async fn logout(
        &self,
        member: &AuthenticatedMember,
    ) -> Result<SessionCookies, ClientError> {
        let session_id = member.member_session_id().to_owned();
        self.inner
            .revoked
            .insert(session_id.clone(), self.inner.clock.read());
        if let Some(tokens) = &self.inner.tokens {
            tokens.remove_session(&session_id);
        }
        let cookies = SessionCookies::new(self.inner.cookies.clear());
        let client = self.inner.client.clone();
        let revoke = async move { client.revoke(&session_id).await };
        let revoked = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .spawn(revoke.in_current_span())
                .await
                .unwrap_or_else(|e| Err(ClientError::transport(format!("revoke task: {e}")))),
            Err(_) => revoke.await,
        };
        match revoked {
            Ok(()) => Ok(cookies),
            // Only Stytch's own "session not found": a 404 page from a wrong base URL
            // is an error.
            Err(e) if e.is_session_not_found() => Ok(cookies),
            Err(e) => Err(e),
        }
    }

    /// A route guard that answers 401 unless the request has a valid session.
    pub fn require_session(&self) -> crate::RequireSession {
        crate::RequireSession::new()
    }

    /// Decides whether `member` may perform `action` on `resource` in
    /// `organization_id`, for decisions that depend on data loaded in the handler.
    ///
    /// Decided locally, like Stytch does, against the cached RBAC policy (at most
    /// `policy_refresh_interval` old while Stytch answers) and the organization's custom
    /// roles, with the roles of the member's session.
    ///
    /// # Errors
    ///
    /// A rejection (403 `tenancy_mismatch` or `permission_denied`, 503 when the policy
    /// cannot be loaded) that can be returned from the handler as is. It is the default
    /// JSON rejection: the [`error_handler`](crate::StytchAuthBuilder::error_handler)
    /// is not applied here (it needs the request's parts); map it in the handler if
    /// your app renders its own.
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::extract::{Path, State};
    /// use axum_stytch::{AuthRejection, AuthenticatedMember, StytchAuth};
    ///
    /// // The document's organization is known only once it is loaded.
    /// async fn delete_document(
    ///     State(auth): State<StytchAuth>,
    ///     member: AuthenticatedMember,
    ///     Path(id): Path<String>,
    /// ) -> Result<String, AuthRejection> {
    ///     let owner_organization = load_owner(&id);
    ///     auth.authorize(&member, &owner_organization, "document", "delete")
    ///         .await?;
    ///     Ok(format!("deleted {id}"))
    /// }
    /// # fn load_owner(_: &str) -> String { String::new() }
    /// ```
    pub async fn authorize(
        &self,
        member: &AuthenticatedMember,
        organization_id: &str,
        resource: &str,
        action: &str,
    ) -> Result<crate::Verdict, crate::AuthRejection> {
        let wanted = ResourceAction::new(resource, action);
        self.inner
            .policy
            .decide(member, organization_id, &wanted, self.inner.clock.now())
            .await
            .map_err(|f| {
                self.inner.metrics.failure(f.reason);
                f.rejection(Some(&wanted))
            })
    }

    /// `Set-Cookie` headers that clear both session cookies, without calling Stytch.
    pub fn clear_cookies(&self) -> SessionCookies {
        SessionCookies::new(self.inner.cookies.clear())
    }

    // ------------------------------------------------------------------------------
    // Per-request authentication

    /// Everything that can be decided without waiting: credentials, cache, local
    /// verification with loaded keys. One `stytch.session` span per request, with the
    /// path taken and the outcome (never a credential).
    pub(crate) fn begin(&self, headers: &HeaderMap) -> Begin {
        let span = tracing::debug_span!(
            "stytch.session",
            path = tracing::field::Empty,
            outcome = tracing::field::Empty
        );
        let entered = span.enter();
        let begin = self.begin_unobserved(headers);
        if !span.is_disabled() {
            let (path, outcome) = match &begin {
                Begin::Ready(ctx) => ctx.describe(),
                Begin::NeedsKeys(_) => ("local", "awaiting_keys"),
            };
            span.record("path", path);
            span.record("outcome", outcome);
        }
        drop(entered);
        begin
    }

    fn begin_unobserved(&self, headers: &HeaderMap) -> Begin {
        let creds = match credentials::extract(headers, &self.inner.credentials) {
            Ok(c) => c,
            Err(error) => {
                if error == credentials::CredentialError::Duplicate {
                    self.warn_duplicate();
                } else {
                    tracing::debug!(?error, "session credentials unreadable");
                }
                return Begin::Ready(self.failed(
                    Failure::new(Reason::InvalidCredentials),
                    credentials::Source::Cookie,
                ));
            }
        };
        let source = creds.source;
        let Some(raw_jwt) = creds.jwt else {
            let Some(token) = creds.token else {
                return Begin::Ready(self.failed(Failure::new(Reason::MissingCredentials), source));
            };
            let Ok(token) = token.validate() else {
                return Begin::Ready(self.failed(Failure::new(Reason::InvalidCredentials), source));
            };
            return Begin::Ready(self.by_session_token(token, source));
        };
        // A hit is byte-identical to a token that was validated and verified.
        let now = self.inner.clock.read();
        if let Some(member) = self.cached(raw_jwt.as_bytes(), now.mono) {
            return Begin::Ready(self.verified(member, now.wall));
        }
        let Ok(jwt) = raw_jwt.validate() else {
            return Begin::Ready(self.failed(Failure::new(Reason::InvalidCredentials), source));
        };
        let token = match Token::parse(jwt, Some(&self.inner.headers)) {
            Ok(t) => t,
            Err(rejected) => return Begin::Ready(self.rejected(rejected, source)),
        };
        match self.inner.jwks.serving_set_with(&token.kid) {
            Some(set) => Begin::Ready(self.verify_with(&set.value, jwt, &token, source, now)),
            None => Begin::NeedsKeys(AwaitingKeys {
                jwt: jwt.to_owned(),
                source,
                kid: token.kid,
            }),
        }
    }

    /// A session token alone: Stytch decides. Every session token costs a call, so
    /// what cannot be one, and what Stytch already said is gone, is refused without
    /// asking.
    fn by_session_token(&self, token: &str, source: credentials::Source) -> AuthContext {
        if !is_plausible_session_token(token) {
            return self.failed(Failure::new(Reason::InvalidToken), source);
        }
        if self.is_dead(token) {
            return self.failed_clearing(Reason::SessionRevoked, source);
        }
        self.remote(
            SessionCredential::Token(token.to_owned()),
            None,
            false,
            source,
        )
    }

    /// The rest of [`begin`](Self::begin) when keys had to be fetched first.
    pub(crate) async fn finish(&self, waiting: AwaitingKeys) -> AuthContext {
        let AwaitingKeys { jwt, source, kid } = waiting;
        match self.inner.jwks.key_set_for(&kid).await {
            Ok(set) => match Token::parse(&jwt, Some(&self.inner.headers)) {
                // Keys may have taken a while: the time is read again.
                Ok(parsed) => {
                    self.verify_with(&set.value, &jwt, &parsed, source, self.inner.clock.read())
                }
                Err(rejected) => self.rejected(rejected, source),
            },
            Err(KeyError::UnknownKid) => self.rejected(Rejected::UnknownKid, source),
            // Not the session token beside the JWT either (SECURITY.md, "Keys
            // unavailable"): it may belong to another session than the JWT, and every
            // browser request would go to Stytch for as long as the keys are missing.
            Err(KeyError::Unavailable) => self.failed(
                Failure::new(Reason::StytchUnavailable).retry_after(self.inner.jwks.retry_after()),
                source,
            ),
        }
    }

    fn verify_with(
        &self,
        set: &KeySet,
        jwt: &str,
        token: &Token<'_>,
        source: credentials::Source,
        Reading { wall: now, mono }: Reading,
    ) -> AuthContext {
        let Some(key) = set.get(&token.kid) else {
            return self.rejected(Rejected::UnknownKid, source);
        };
        self.inner
            .metrics
            .local_verifications
            .fetch_add(1, Ordering::Relaxed);
        if let Err(rejected) = token.verify_signature(key) {
            return self.rejected(rejected, source);
        }
        token.remember_header(&self.inner.headers);
        let claims = match token.claims() {
            Ok(c) => c,
            Err(rejected) => return self.rejected(rejected, source),
        };
        // Read before the denylist check, stored with the cache entry.
        let epoch = self.inner.tokens.as_ref().map_or(0, |t| t.epoch());
        if self.is_revoked(&claims.session.id) {
            return self.failed_clearing(Reason::SessionRevoked, source);
        }
        match self.inner.rules.check(&claims, now) {
            Ok(Standing::Fresh { valid_until }) => {
                let member = member_from_claims(claims);
                if let Some(tokens) = &self.inner.tokens {
                    // Trusted for the time it has left, counted in real time.
                    let left = crate::timestamp::from_unix(valid_until)
                        .duration_since(now)
                        .unwrap_or_default();
                    let until = mono.checked_add(left).unwrap_or(mono);
                    tokens.insert(jwt, member.clone(), Arc::clone(&token.kid), until, epoch);
                    // A logout or a key retirement that ran since the checks above must
                    // not leave this entry behind (each first denylists the session or
                    // stores the new key set, then starts a new epoch, then purges; hits
                    // in between check again, as the entry's epoch is the old one).
                    // Their other entries are theirs to purge, or carry the old epoch
                    // too: dropping this one is enough.
                    if self.is_revoked(member.member_session_id()) {
                        tokens.remove(jwt.as_bytes());
                        return self.failed_clearing(Reason::SessionRevoked, source);
                    }
                    if !self.inner.jwks.holds(&token.kid) {
                        tokens.remove(jwt.as_bytes());
                        return self.rejected(Rejected::UnknownKid, source);
                    }
                }
                tracing::debug!(path = "local", outcome = "ok", "stytch session verified");
                self.verified(member, now)
            }
            // Signed by Stytch but not valid locally (see `Standing::Stale`): Stytch
            // decides (and renews).
            Ok(Standing::Stale { issued_ahead }) => {
                if issued_ahead {
                    self.warn_clock_behind();
                }
                let session_ended = claims.session.expires_at.is_some_and(|end| end <= now);
                if self.is_dead(jwt) {
                    return self.failed_clearing(session_gone(session_ended), source);
                }
                self.remote(
                    SessionCredential::Jwt(jwt.to_owned()),
                    Some(claims.organization.organization_id),
                    session_ended,
                    source,
                )
            }
            Err(Rejected::ForeignIssuer) => {
                self.warn_foreign_issuer(&claims.iss);
                self.rejected(Rejected::ForeignIssuer, source)
            }
            Err(rejected) => self.rejected(rejected, source),
        }
    }

    /// The member of a cached verified JWT. No denylist or key set lookup unless a
    /// logout or a key retirement ran since the entry was last checked: each purges the
    /// tokens concerned, and an entry a verification inserted around one carries the
    /// epoch before it.
    fn cached(&self, jwt: &[u8], now: Instant) -> Option<AuthenticatedMember> {
        let tokens = self.inner.tokens.as_ref()?;
        let member = match tokens.get(jwt, now)? {
            Lookup::Checked(member) => member,
            Lookup::Unchecked(entry) => {
                let epoch = tokens.epoch();
                if self.is_revoked(entry.member().member_session_id())
                    || !self.inner.jwks.holds(entry.kid())
                {
                    // Verified again, the token is refused (revoked, or its key
                    // retired).
                    tokens.remove(jwt);
                    return None;
                }
                tokens.mark_checked(jwt, entry, epoch)
            }
        };
        self.inner
            .metrics
            .cache_hits
            .fetch_add(1, Ordering::Relaxed);
        tracing::trace!(path = "cached", outcome = "ok", "stytch session verified");
        Some(member)
    }

    /// A JWT issued ahead of our clock by more than the leeway costs a call to Stytch
    /// per request: say so, at most once a minute.
    fn warn_clock_behind(&self) {
        if self
            .inner
            .clock_warning
            .allow(self.inner.clock.unix_seconds())
        {
            tracing::warn!(
                leeway_secs = self.inner.rules.leeway_secs,
                "a Stytch session JWT was issued ahead of this server's clock by more than \
                 the leeway (is the clock behind?): such JWTs go to Stytch, one call per request"
            );
        }
    }

    /// A JWT signed with the project's keys but carrying another issuer than the
    /// accepted ones is refused (401), and so is every session of a project whose
    /// sessions are minted through a custom domain the layer was not given. Say so,
    /// with the issuer (the JWT's signature was checked, so it is Stytch's, and an
    /// issuer is no secret), at most once a minute.
    fn warn_foreign_issuer(&self, issuer: &str) {
        if self
            .inner
            .issuer_warning
            .allow(self.inner.clock.unix_seconds())
        {
            tracing::warn!(
                issuer,
                accepted = ?self.inner.rules.issuers,
                "a Stytch session JWT with a valid signature carries an issuer this layer \
                 does not accept, and was refused with 401: if your project uses a Stytch \
                 custom domain, give it to the layer with `base_url` (its origin is then \
                 accepted besides stytch.com/<project_id>)"
            );
        }
    }

    /// A guard whose `organization_from_path` names a parameter its route does not
    /// have answers 500 to every request: an error, logged at most once a minute (any
    /// client can send requests to that route).
    pub(crate) fn log_misconfigured_route(&self, parameter: &str) {
        if self
            .inner
            .route_error
            .allow(self.inner.clock.unix_seconds())
        {
            tracing::error!(
                parameter,
                "RequireAuthz::organization_from_path names a parameter this route does not \
                 have: its requests are answered 500 (logged at most once a minute)"
            );
        }
    }

    /// A session cookie sent twice is refused (401): when cookies set with another
    /// `Domain` or `Path` than the layer's are the cause, every request of that
    /// browser is refused. Say so, at most once a minute.
    fn warn_duplicate(&self) {
        if self
            .inner
            .duplicate_warning
            .allow(self.inner.clock.unix_seconds())
        {
            tracing::warn!(
                "a request carried a Stytch session cookie twice (or two Authorization \
                 headers) and was refused with 401: a browser keeps one cookie per name, \
                 domain and path, so cookies set elsewhere (your frontend, Stytch's SDK) \
                 with another Domain or Path than cookie_domain / cookie_path come back \
                 beside ours"
            );
        }
    }

    /// A failed `sessions/authenticate` call, logged once per call (not per request
    /// waiting on it), and at WARN or ERROR at most once a minute each: during an
    /// outage, or with a wrong secret, every call fails alike, and calls are what
    /// anyone can cause (one per distinct session token).
    fn log_call_failure(&self, error: &ClientError) {
        let now = self.inner.clock.unix_seconds();
        match RemoteFailure::of(error).log_line() {
            Some((false, message)) if self.inner.remote_warning.allow(now) => {
                tracing::warn!(%error, "{message} (logged at most once a minute)");
            }
            Some((true, message)) if self.inner.remote_error.allow(now) => {
                tracing::error!(%error, "{message} (logged at most once a minute)");
            }
            _ => tracing::debug!(%error, "stytch sessions/authenticate failed"),
        }
    }

    /// Remembers a credential Stytch answered "session not found" for.
    fn remember_dead(&self, credential: &SessionCredential) {
        self.inner
            .dead
            .insert(Arc::from(credential.value()), self.inner.clock.read());
    }

    fn is_dead(&self, credential: &str) -> bool {
        self.inner
            .dead
            .contains(credential, self.inner.clock.read())
    }

    pub(crate) fn is_revoked(&self, member_session_id: &str) -> bool {
        self.inner
            .revoked
            .contains(member_session_id, self.inner.clock.read())
    }

    fn rejected(&self, rejected: Rejected, source: credentials::Source) -> AuthContext {
        tracing::debug!(path = "local", outcome = "rejected", reason = ?rejected, "stytch session JWT rejected");
        self.failed(Failure::new(Reason::InvalidToken), source)
    }

    fn verified(&self, member: AuthenticatedMember, at: SystemTime) -> AuthContext {
        AuthContext::Verified {
            auth: self.clone(),
            member,
            at,
            verdict: None,
        }
    }

    fn failed(&self, failure: Failure, source: credentials::Source) -> AuthContext {
        AuthContext::Deferred(Arc::new(RequestAuth::failed(self.clone(), failure, source)))
    }

    fn failed_clearing(&self, reason: Reason, source: credentials::Source) -> AuthContext {
        self.failed(Failure::new(reason).clearing_cookies(), source)
    }

    fn remote(
        &self,
        credential: SessionCredential,
        organization_hint: Option<String>,
        session_ended: bool,
        source: credentials::Source,
    ) -> AuthContext {
        AuthContext::Deferred(Arc::new(RequestAuth::remote(
            self.clone(),
            credential,
            organization_hint,
            session_ended,
            source,
        )))
    }

    /// `sessions/authenticate`, coalescing identical concurrent calls.
    pub(crate) async fn authenticate_remote(&self, params: AuthenticateParams) -> RemoteResult {
        let this = self.clone();
        let key = params.clone();
        self.inner
            .remote
            .run(key, move || async move {
                // Remembered and checked inside the call, not by its callers: a caller
                // that finds no call in progress finds the credential remembered once an
                // earlier call for it has ended (and does not ask Stytch again).
                if this.is_dead(params.credential.value()) {
                    return Err(Arc::new(ClientError::remembered_session_not_found()));
                }
                // Stytch rate-limited the project: every credential waits it out.
                let now_ms = this.inner.clock.unix_millis();
                if let Some(refused) = this.inner.remote_backoff.refusal(now_ms) {
                    return Err(Arc::new(refused));
                }
                // Held until the call ends, whether or not anyone still waits for it.
                let _in_flight = match this.permit_for(&params.credential, now_ms) {
                    Ok(permit) => permit,
                    Err(refused) => return Err(Arc::new(refused)),
                };
                this.inner
                    .metrics
                    .remote_authentications
                    .fetch_add(1, Ordering::Relaxed);
                let span = tracing::debug_span!(
                    "stytch.authenticate",
                    path = "remote",
                    check = params.authorization_check.is_some()
                );
                let result = this
                    .inner
                    .client
                    .authenticate(&params)
                    .instrument(span)
                    .await;
                if let (Ok(_), SessionCredential::Token(token)) = (&result, &params.credential) {
                    this.inner.unverified.confirm(token);
                }
                if let Err(error) = &result {
                    this.log_call_failure(error);
                    this.inner
                        .remote_backoff
                        .observe(error, this.inner.clock.unix_millis());
                    // Only Stytch's own "session not found" marks a credential dead; a
                    // proxy's 404 page must not log anyone out.
                    if error.is_session_not_found() {
                        this.remember_dead(&params.credential);
                    }
                }
                result.map(Arc::new).map_err(Arc::new)
            })
            .await
            .unwrap_or_else(|| {
                Err(Arc::new(ClientError::transport(
                    "authentication task failed",
                )))
            })
    }
}

impl StytchAuth {
    /// The permit for one `sessions/authenticate` call of `credential` at `now_ms`: from
    /// the unverified budget for a session token Stytch never confirmed, else from
    /// `max_concurrent_authentications`. The refusal, counted and warned about, when
    /// none is left.
    fn permit_for(
        &self,
        credential: &SessionCredential,
        now_ms: u64,
    ) -> Result<Permit, ClientError> {
        let inner = &self.inner;
        if let SessionCredential::Token(token) = credential
            && !inner.unverified.is_confirmed(token)
        {
            return inner
                .unverified
                .admit(inner.clock.monotonic())
                .map_err(|refused| {
                    inner
                        .metrics
                        .unverified_refused
                        .fetch_add(1, Ordering::Relaxed);
                    if inner.unverified_warning.allow(now_ms / 1000) {
                        tracing::warn!(
                            ?refused,
                            "calls to Stytch for session tokens not seen before are over their \
                             budget (unverified_authentications_per_second, \
                             max_concurrent_unverified_authentications): such requests are \
                             answered 503 without a call (logged at most once a minute)"
                        );
                    }
                    let wait = match refused {
                        Refused::Rate(wait) => wait,
                        Refused::InFlight => Duration::from_secs(1),
                    };
                    ClientError::unverified_budget_spent(wait)
                });
        }
        inner.authentications.try_acquire().ok_or_else(|| {
            if inner.saturated_warning.allow(now_ms / 1000) {
                tracing::warn!(
                    "max_concurrent_authentications calls to Stytch in flight: requests that \
                     need another are answered 503 without one (logged at most once a minute)"
                );
            }
            ClientError::too_many_in_flight()
        })
    }
}

/// Stytch session tokens are 44 URL-safe base64 characters; this accepts 16 to 128.
fn is_plausible_session_token(token: &str) -> bool {
    (16..=128).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The member described by a verified JWT (wire spec §5.4).
pub(crate) fn member_from_claims(claims: SessionClaims) -> AuthenticatedMember {
    AuthenticatedMember::new(MemberData {
        member_id: claims.sub,
        member_session_id: claims.session.id,
        organization_id: claims.organization.organization_id,
        organization_slug: claims.organization.slug,
        roles: claims.session.roles,
        authentication_factors: claims.session.authentication_factors,
        started_at: claims.session.started_at,
        expires_at: claims
            .session
            .expires_at
            .unwrap_or_else(|| crate::timestamp::from_unix(claims.exp)),
        custom_claims: claims.custom,
        method: AuthMethod::LocalJwt,
    })
}

/// The member described by a `sessions/authenticate` answer.
pub(crate) fn member_from_remote(response: &AuthenticateResponse) -> AuthenticatedMember {
    let s = &response.member_session;
    AuthenticatedMember::new(MemberData {
        member_id: s.member_id.clone(),
        member_session_id: s.member_session_id.clone(),
        organization_id: s.organization_id.clone(),
        organization_slug: s.organization_slug.clone(),
        roles: s.roles.clone(),
        authentication_factors: s.authentication_factors.clone(),
        started_at: s.started_at,
        expires_at: s.expires_at,
        custom_claims: s.custom_claims.clone().unwrap_or_default(),
        method: AuthMethod::Remote,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::StytchEmulator;

    /// The request's context, decided without waiting for keys (none are needed, or
    /// they are loaded).
    #[track_caller]
    fn begin_ready(auth: &StytchAuth, headers: &HeaderMap) -> AuthContext {
        match auth.begin(headers) {
            Begin::Ready(ctx) => ctx,
            Begin::NeedsKeys(_) => panic!("waited for keys"),
        }
    }

    /// A session cookie sent twice is refused and logged as a warning that names the
    /// usual cause, at most once a minute, without the cookies' values.
    #[tokio::test]
    async fn a_repeated_session_cookie_is_refused_with_a_warning_once_a_minute() {
        let emu = StytchEmulator::start().await;
        let auth = emu.auth_builder().build().expect("a valid configuration");
        let headers = credentials::cookie_headers(&[
            b"stytch_session_jwt=aaa.bbb.ccc; x=1; stytch_session_jwt=ddd.eee.fff",
        ]);
        let outcome = || begin_ready(&auth, &headers).describe();
        let (first, all) = crate::test_logs::capture(|logged| {
            for _ in 0..3 {
                assert_eq!(outcome(), ("local", "invalid_credentials"));
            }
            let first = logged();
            emu.clock().advance(Duration::from_secs(59));
            outcome();
            emu.clock().advance(Duration::from_secs(1));
            outcome();
            (first, logged())
        });
        assert_eq!(first.matches("WARN").count(), 1, "{first}");
        assert!(first.contains("cookie_domain / cookie_path"), "{first}");
        assert_eq!(all.matches("WARN").count(), 2, "{all}");
        assert!(
            !all.contains("aaa.bbb") && !all.contains("ddd.eee"),
            "{all}"
        );
    }

    /// A validly signed JWT of an issuer the layer was not given (a custom domain left
    /// out of `base_url`) is refused without a call, and the warning names the issuer
    /// and the fix, at most once a minute.
    #[tokio::test]
    async fn a_signed_jwt_of_another_issuer_is_refused_with_a_warning_naming_it() {
        let emu = StytchEmulator::start_with(
            crate::testing::EmulatorOptions::new().issuer("https://auth.example.com"),
        )
        .await;
        let org = emu.create_organization("acme");
        let member_id = emu.create_member(&org, "ada@acme.example", &["stytch_member"]);
        let session = emu.create_session(&member_id);
        let auth = emu.auth_builder().build().expect("a valid configuration");
        auth.warm_up().await.expect("the keys");
        let cookie = format!("stytch_session_jwt={}", session.session_jwt);
        let headers = credentials::cookie_headers(&[cookie.as_bytes()]);
        let outcome = || begin_ready(&auth, &headers).describe();
        let (first, all) = crate::test_logs::capture(|logged| {
            for _ in 0..3 {
                assert_eq!(outcome(), ("local", "invalid_token"));
            }
            let first = logged();
            emu.clock().advance(Duration::from_secs(60));
            outcome();
            (first, logged())
        });
        assert_eq!(first.matches("WARN").count(), 1, "{first}");
        assert!(first.contains("https://auth.example.com"), "{first}");
        assert!(first.contains("`base_url`"), "{first}");
        assert_eq!(all.matches("WARN").count(), 2, "{all}");
        assert!(!all.contains(&session.session_jwt), "{all}");
        assert_eq!(emu.requests(crate::testing::Endpoint::Authenticate), 0);
    }

    /// While Stytch fails, every request that needs it fails alike: the failure is
    /// logged once per call, at WARN at most once a minute, not once per request (a
    /// request anyone can make, with a made-up session token).
    #[test]
    fn failing_calls_to_stytch_warn_once_a_minute_not_per_request() {
        let warnings = crate::test_logs::capture(|logged| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                let emu = StytchEmulator::start().await;
                let auth = emu.auth_builder().build().expect("a valid configuration");
                let ask = |i: usize| {
                    let cookie = format!("stytch_session=made-up-session-token-{i:08}");
                    let headers = credentials::cookie_headers(&[cookie.as_bytes()]);
                    begin_ready(&auth, &headers)
                };
                // Rate-limited: one call, then 49 requests answered without one.
                emu.inject_fault(
                    crate::testing::Endpoint::Authenticate,
                    crate::testing::Fault::RateLimited {
                        retry_after: Duration::from_secs(60),
                        times: 1,
                    },
                );
                for i in 0..50 {
                    let failure = ask(i).member().await.expect_err("rate-limited");
                    assert_eq!(failure.reason, Reason::StytchUnavailable);
                }
                let after_429 = logged().matches("WARN").count();
                // A minute later, Stytch answers 500 to each of 20 calls.
                emu.clock().advance(Duration::from_secs(61));
                emu.inject_fault(
                    crate::testing::Endpoint::Authenticate,
                    crate::testing::Fault::Status {
                        status: 500,
                        times: 20,
                    },
                );
                for i in 50..70 {
                    assert!(ask(i).member().await.is_err());
                }
                assert_eq!(emu.requests(crate::testing::Endpoint::Authenticate), 21);
                (after_429, logged().matches("WARN").count())
            })
        });
        assert_eq!(warnings, (1, 2));
    }

    /// A verification that checked the denylist before a logout, and inserted its
    /// cache entry only after that logout had purged the session's tokens, replayed
    /// step by step: the entry must not be trusted once `logout` has returned.
    #[tokio::test]
    async fn a_token_cached_around_a_logout_is_not_trusted_after_it() {
        let emu = StytchEmulator::start().await;
        let org = emu.create_organization("acme");
        let member_id = emu.create_member(&org, "ada@acme.example", &["stytch_member"]);
        let session = emu.create_session(&member_id);
        let auth = emu.auth_builder().build().expect("a valid configuration");
        let cookie = format!("stytch_session_jwt={}", session.session_jwt);
        let headers = credentials::cookie_headers(&[cookie.as_bytes()]);
        let verified = |auth: &StytchAuth| match begin_ready(auth, &headers) {
            AuthContext::Verified { member, .. } => Some(member),
            AuthContext::Deferred(_) => None,
        };
        auth.warm_up().await.expect("the keys");
        let member = verified(&auth).expect("a valid JWT");
        let tokens = auth.inner.tokens.as_ref().expect("a token cache");

        // The verification reads the epoch and passes the denylist check...
        let before = tokens.epoch();
        // ... the whole logout runs: denylist, new epoch, purge ...
        let _clearing = auth.logout(&member).await.expect("logout");
        // ... and then the verification inserts its entry.
        let until = crate::Clock::monotonic(&emu.clock()) + Duration::from_secs(300);
        let kid: Arc<str> = Arc::from(emu.signing_kid());
        tokens.insert(&session.session_jwt, member, kid, until, before);

        assert!(
            verified(&auth).is_none(),
            "a logged-out session's JWT was accepted from the cache"
        );
        assert!(
            tokens
                .get(
                    session.session_jwt.as_bytes(),
                    crate::Clock::monotonic(&emu.clock())
                )
                .is_none(),
            "the refused entry is gone"
        );
    }
}
