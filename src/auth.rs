//! [`StytchAuth`]: the public handle on the engine ([`Core`]), and how the builder
//! makes one.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::client::ClientError;
use crate::config::{ConfigError, StytchAuthBuilder};
use crate::cookies::SessionCookies;
use crate::core::Core;
use crate::layer::StytchAuthLayer;
use crate::member::AuthenticatedMember;
use crate::metrics::MetricsSnapshot;
use crate::rbac::resource_action::ResourceAction;

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
    pub(crate) core: Arc<Core>,
}

impl fmt::Debug for StytchAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StytchAuth")
            .field("core", &self.core)
            .finish()
    }
}

impl StytchAuthBuilder {
    /// Validates every setting and builds the [`StytchAuth`].
    ///
    /// # Errors
    ///
    /// The first setting out of its documented range, or a base URL or HTTP client
    /// that cannot be used ([`ConfigError`]).
    pub fn build(self) -> Result<StytchAuth, ConfigError> {
        Ok(StytchAuth {
            core: Core::shared(self.into_settings()?)?,
        })
    }
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

    /// The Tower layer that authenticates every request (see the crate docs for the
    /// request flow). It never rejects by itself: extractors and guards decide.
    pub fn layer(&self) -> StytchAuthLayer {
        StytchAuthLayer::new(Arc::clone(&self.core))
    }

    /// The project id.
    pub fn project_id(&self) -> &str {
        &self.core.project_id
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
        self.core.warm_up().await
    }

    /// The layer's counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.core.metrics()
    }

    /// Publishes the counters' increments since the last publication, and the caches'
    /// sizes, to the `metrics` recorder now (feature `metrics`; the names are in
    /// README's "Metrics" table).
    ///
    /// The layer publishes by itself, at most once a second, while requests come in or
    /// calls to Stytch end; counts of the last second before traffic stops wait for
    /// the next publication. Call this from the handler that renders your metrics, so
    /// that each scrape reads exact values.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn scrape(auth: &axum_stytch::StytchAuth) {
    /// auth.publish_metrics();
    /// // then render the exporter's registry, e.g. `PrometheusHandle::render()`
    /// # }
    /// ```
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn publish_metrics(&self) {
        self.core.metrics.export.publish_now();
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
            self.core
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
        self.core.logout(member.member_session_id()).await?;
        Ok(self.clear_cookies())
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
        self.core
            .decide(
                crate::rbac::Subject::Member(member),
                organization_id,
                &wanted,
                self.core.clock.now(),
            )
            .await
            .map_err(|f| f.rejection(Some(&wanted)))
    }

    /// `Set-Cookie` headers that clear both session cookies, without calling Stytch.
    pub fn clear_cookies(&self) -> SessionCookies {
        SessionCookies::new(self.core.cookies.clear())
    }

    /// The routes that serve the protected-resource metadata (RFC 9728) given to
    /// [`protected_resource`](crate::StytchAuthBuilder::protected_resource): `GET` and
    /// `OPTIONS` on `/.well-known/oauth-protected-resource` with the resource's path
    /// inserted (`…/oauth-protected-resource/mcp`) and on the root form, public (no
    /// credentials needed), readable from any origin. Merge them into the router; with
    /// no protected resource configured, there are none (and a warning is logged).
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::{Router, routing::post};
    /// use axum_stytch::{ProtectedResource, RequireScope, StytchAuth};
    ///
    /// # fn app() -> Result<Router, axum_stytch::ConfigError> {
    /// let auth = StytchAuth::builder("project-test-00000000-0000-0000-0000-000000000000", "secret-test-...")
    ///     .connected_app_tokens(true)
    ///     .project_domain("https://acme-1234.customers.stytch.dev")
    ///     .protected_resource(ProtectedResource::new("https://api.example.com/mcp"))
    ///     .build()?;
    /// let app = Router::new()
    ///     .route("/mcp", post(|| async { "tools" }).route_layer(RequireScope::new("read:documents")))
    ///     .merge(auth.protected_resource_metadata())
    ///     .layer(auth.layer());
    /// # Ok(app) }
    /// # app().unwrap();
    /// ```
    pub fn protected_resource_metadata<S>(&self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        match &self.core.resource_metadata {
            Some(metadata) => metadata.router(),
            None => {
                tracing::warn!(
                    "protected_resource_metadata(): no protected resource is configured \
                     (StytchAuthBuilder::protected_resource), so no metadata is served"
                );
                axum::Router::new()
            }
        }
    }
}
