//! The engine: the components of one layer, composed, and the few rules that span
//! them. Built once from the validated settings; shared (`Arc<Core>`) by the public
//! handle, the layer, every request's state, the extractors and the guards.
//!
//! ```text
//! credentials ─▶ local (JWKS, verified tokens, revocations) ─▶ remote (Stytch) ─▶ policy (RBAC)
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::client::{ClientError, ClientSettings, Endpoint, StytchClient};
use crate::clock::SharedClock;
use crate::config::{ConfigError, Settings};
use crate::cookies::CookieSettings;
use crate::credentials::CredentialSettings;
use crate::diagnostics::Diagnostics;
#[cfg(feature = "redis")]
use crate::fleet::{FleetRevocations, FleetSettings};
use crate::jwt::jwks::{JwksCache, JwksSettings, OnRetired};
use crate::jwt::registered::ClaimRules;
use crate::local::LocalVerifier;
use crate::local::token_cache::TokenCache;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::rbac::Verdict;
use crate::rbac::resource_action::ResourceAction;
use crate::rbac::{PolicyCache, Subject};
use crate::rejection::{ErrorHandler, Failure};
use crate::remote::{RemoteAuthenticator, RemoteSettings};
use crate::resource_metadata::ResourceMetadata;
use crate::revocation::{LocalRevocations, RevocationHooks, Revocations};
use crate::timestamp::saturating_add;
use crate::unverified::UnverifiedSettings;

/// How long a logged-out session is refused on this instance (within
/// `revocation_capacity`; when full, the oldest go first).
const REVOKED_FOR: Duration = Duration::from_secs(3600);

/// The components of one layer.
pub(crate) struct Core {
    pub(crate) project_id: String,
    pub(crate) clock: SharedClock,
    pub(crate) credentials: CredentialSettings,
    pub(crate) cookies: CookieSettings,
    pub(crate) local: LocalVerifier,
    pub(crate) remote: Arc<RemoteAuthenticator>,
    pub(crate) policy: PolicyCache,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) diagnostics: Arc<Diagnostics>,
    pub(crate) error_handler: Option<ErrorHandler>,
    /// The protected-resource metadata, when configured.
    pub(crate) resource_metadata: Option<ResourceMetadata>,
    /// gRPC requests are refused with gRPC statuses (`grpc_status_errors`).
    pub(crate) grpc_status_errors: bool,
    /// How long a session Stytch said is gone is refused: JWTs older than
    /// `max_token_age` (+ leeway) go to Stytch anyway.
    gone_for: Duration,
    /// The fleet's revocations, when shared through Redis.
    #[cfg(feature = "redis")]
    fleet: Option<Arc<FleetRevocations>>,
    request_timeout: Duration,
    client: StytchClient,
    /// The stores whose sizes are published (feature `metrics`).
    #[cfg(feature = "metrics")]
    sized: SizedStores,
}

/// The size-bounded stores not reachable through the components' own accessors.
#[cfg(feature = "metrics")]
struct SizedStores {
    tokens: Option<Arc<TokenCache>>,
    revocations: Arc<LocalRevocations>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("project_id", &self.project_id)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl Core {
    /// Builds every component from validated `settings`.
    pub(crate) fn new(s: Settings) -> Result<Self, ConfigError> {
        let endpoint = Endpoint::resolve(&s.project_id, s.base_url.as_deref())?;
        let client = StytchClient::new(
            &s.project_id,
            &s.secret,
            &endpoint,
            &ClientSettings {
                connect_timeout: s.connect_timeout,
                request_timeout: s.request_timeout,
            },
        )?;
        let metrics = Arc::new(Metrics::new(s.clock.clone()));
        #[cfg(feature = "metrics")]
        let client = client.observed_by(crate::metrics::export::observer(&metrics));
        let diagnostics = Arc::new(Diagnostics::new(s.clock.clone()));
        let mut issuers = vec![format!("stytch.com/{}", s.project_id)];
        issuers.extend(endpoint.custom_issuer.clone());
        // Validated: an origin.
        let project_domain = s
            .project_domain
            .as_deref()
            .and_then(|d| crate::client::origin(d).ok());
        issuers.extend(project_domain.clone());
        issuers.dedup();
        let resource_metadata = s
            .protected_resource
            .as_ref()
            .map(|r| ResourceMetadata::new(r, project_domain.as_deref()))
            .transpose()
            .map_err(|reason| ConfigError::InvalidSetting {
                setting: "protected_resource",
                reason,
            })?;
        // Entries expire by the injected clock, checked on every read.
        let tokens = (s.token_cache_capacity > 0 && !s.max_token_age.is_zero())
            .then(|| Arc::new(TokenCache::new(s.token_cache_capacity)));
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
            s.clock.clone(),
            JwksSettings {
                refresh_interval: s.jwks_refresh_interval,
                cooldown: s.jwks_refresh_cooldown,
                max_stale: s.jwks_max_stale,
            },
            Arc::clone(&metrics),
            on_retired,
        );
        // A revocation takes the session's tokens out of the cache; a lost one makes
        // every cached token be checked again.
        let hooks = match &tokens {
            Some(tokens) => {
                let (revoked, distrust) = (Arc::clone(tokens), Arc::clone(tokens));
                RevocationHooks {
                    revoked: Box::new(move |session| revoked.remove_session(session)),
                    distrust: Box::new(move || distrust.check_all_again()),
                }
            }
            None => RevocationHooks::none(),
        };
        let revocations_local = LocalRevocations::new(
            s.clock.clone(),
            s.revocation_capacity,
            s.leeway.as_secs(),
            hooks,
            Arc::clone(&metrics),
            Arc::clone(&diagnostics),
        );
        let revocations = Arc::clone(&revocations_local);
        let revocations: Arc<dyn Revocations> = revocations;
        #[cfg(feature = "redis")]
        let (revocations, fleet) =
            match fleet_store(&s, &revocations_local, &metrics, &diagnostics)? {
                Some(fleet) => (Arc::clone(&fleet) as Arc<dyn Revocations>, Some(fleet)),
                None => (revocations, None),
            };
        #[cfg(feature = "metrics")]
        let sized = SizedStores {
            tokens: tokens.clone(),
            revocations: Arc::clone(&revocations_local),
        };
        let local = LocalVerifier::new(
            s.clock.clone(),
            ClaimRules {
                project_id: s.project_id.clone(),
                issuers,
                leeway_secs: s.leeway.as_secs(),
                max_token_age_secs: s.max_token_age.as_secs(),
                machine_max_age_secs: s.machine_token_max_age.as_secs(),
            },
            jwks,
            tokens,
            revocations,
            Arc::clone(&metrics),
            Arc::clone(&diagnostics),
        );
        let remote = RemoteAuthenticator::new(
            client.clone(),
            s.clock.clone(),
            RemoteSettings {
                max_concurrent: s.max_concurrent_authentications,
                unverified: UnverifiedSettings {
                    per_second: s.unverified_per_second,
                    concurrent: s.max_concurrent_unverified,
                    remembered: s.token_cache_capacity.max(1_000),
                },
                gone_capacity: s.revocation_capacity,
                session_duration_minutes: s
                    .session_duration
                    .and_then(|d| u32::try_from(d.as_secs() / 60).ok()),
            },
            Arc::clone(&metrics),
            Arc::clone(&diagnostics),
        );
        let policy = PolicyCache::new(
            client.clone(),
            s.clock.clone(),
            s.policy_refresh_interval,
            s.policy_grace,
            s.org_policy_capacity,
            Arc::clone(&metrics),
        );
        Ok(Self {
            credentials: CredentialSettings::new(
                s.jwt_cookie.clone(),
                s.token_cookie.clone(),
                // gRPC clients send `authorization` metadata.
                s.bearer || s.grpc_status_errors,
                s.max_cookie_size,
            )
            .with_machine_tokens(s.m2m_tokens, s.connected_app_tokens),
            resource_metadata,
            cookies: CookieSettings {
                jwt_name: s.jwt_cookie,
                token_name: s.token_cookie,
                path: s.cookie_path,
                domain: s.cookie_domain,
                secure: s.cookie_secure,
                // Stytch's browser SDK cannot write over an `HttpOnly` cookie.
                http_only: s.cookie_http_only && !s.browser_sdk_cookies,
                same_site: s.cookie_same_site,
                layer_writes: !s.browser_sdk_cookies,
            },
            project_id: s.project_id,
            clock: s.clock,
            local,
            remote,
            policy,
            metrics,
            diagnostics,
            error_handler: s.error_handler,
            grpc_status_errors: s.grpc_status_errors,
            gone_for: s.max_token_age.saturating_add(s.leeway),
            #[cfg(feature = "redis")]
            fleet,
            request_timeout: s.request_timeout,
            client,
            #[cfg(feature = "metrics")]
            sized,
        })
    }

    /// Builds every component from validated `settings`, shared; with the `metrics`
    /// feature, the counters' publications read from it.
    pub(crate) fn shared(s: Settings) -> Result<Arc<Self>, ConfigError> {
        let core = Arc::new(Self::new(s)?);
        #[cfg(feature = "metrics")]
        {
            let weak: std::sync::Weak<Self> = Arc::downgrade(&core);
            core.metrics.export.read_from(weak);
        }
        Ok(core)
    }

    /// Ends the session `member_session_id`: refused on this instance at once (for
    /// an hour), then revoked at Stytch (a session Stytch no longer knows counts as
    /// revoked).
    pub(crate) async fn logout(&self, member_session_id: &str) -> Result<(), ClientError> {
        let until = saturating_add(self.clock.now(), REVOKED_FOR);
        self.local.revoke(member_session_id, until);
        self.remote.revoke(member_session_id).await
    }

    /// Stytch answered "session not found" for a validly signed JWT of the session
    /// `member_session_id`: refuse its JWTs while they could be trusted locally.
    pub(crate) fn session_gone(&self, member_session_id: &str) {
        let until = saturating_add(self.clock.now(), self.gone_for);
        self.local.revoke(member_session_id, until);
    }

    /// Fetches the keys now, and (with a fleet's store) waits for the fleet's
    /// revocations to be loaded once, at most `request_timeout`.
    pub(crate) async fn warm_up(&self) -> Result<(), ClientError> {
        #[cfg(feature = "redis")]
        if let Some(fleet) = &self.fleet
            && !fleet.loaded(self.request_timeout).await
        {
            tracing::warn!(
                "the fleet's revocations could not be loaded from Redis yet: this instance \
                 starts without them (a JWT revoked elsewhere is accepted until it is \
                 max_token_age old) and loads them once Redis answers"
            );
        }
        #[cfg(not(feature = "redis"))]
        let _ = self.request_timeout;
        self.local.warm_up().await
    }

    /// The URL of the protected-resource metadata, named in Bearer challenges.
    pub(crate) fn resource_metadata_url(&self) -> Option<&Arc<str>> {
        self.resource_metadata.as_ref().map(|m| &m.url)
    }

    /// Whether the session `member_session_id` is revoked.
    pub(crate) fn is_revoked(&self, member_session_id: &str) -> bool {
        self.local.is_revoked(member_session_id)
    }

    /// The local RBAC decision for `subject` (a member by roles, a Connected App by
    /// scopes) on `wanted` in `organization_id` at `now`; a refusal is counted.
    pub(crate) async fn decide(
        &self,
        subject: Subject<'_>,
        organization_id: &str,
        wanted: &ResourceAction,
        now: SystemTime,
    ) -> Result<Verdict, Failure> {
        self.policy
            .decide(subject, organization_id, wanted, now)
            .await
            .inspect_err(|f| self.metrics.failure(f.reason))
    }

    /// The counters.
    pub(crate) fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot(self.remote.coalesced())
    }
}

#[cfg(feature = "metrics")]
impl crate::metrics::export::Source for Core {
    fn snapshot(&self) -> MetricsSnapshot {
        self.metrics()
    }

    fn cache_entries(&self) -> crate::metrics::export::CacheEntries {
        let (gone_credentials, confirmed_tokens) = self.remote.remembered();
        crate::metrics::export::CacheEntries {
            verified_tokens: self.sized.tokens.as_ref().map_or(0, |t| t.len()),
            revocations: self.sized.revocations.len(),
            org_policies: self.policy.organizations(),
            gone_credentials,
            confirmed_tokens,
        }
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// The fleet's store in Redis, when `revocations_in_redis` was given.
#[cfg(feature = "redis")]
fn fleet_store(
    s: &Settings,
    local: &Arc<LocalRevocations>,
    metrics: &Arc<Metrics>,
    diagnostics: &Arc<Diagnostics>,
) -> Result<Option<Arc<FleetRevocations>>, ConfigError> {
    let Some(url) = &s.redis_url else {
        return Ok(None);
    };
    let invalid = |reason: String| ConfigError::InvalidSetting {
        setting: "revocations_in_redis",
        reason,
    };
    crate::fleet::check_url(url).map_err(invalid)?;
    let settings = FleetSettings {
        url: url.clone(),
        keys: crate::fleet::Keys::new(&s.redis_key_prefix, &s.project_id),
        ttl: s.max_token_age.saturating_add(s.leeway),
        max_staleness: s.revocation_feed_max_staleness,
        timeout: s.request_timeout,
    };
    FleetRevocations::start(
        settings,
        Arc::clone(local),
        s.clock.clone(),
        Arc::clone(metrics),
        Arc::clone(diagnostics),
    )
    .map(Some)
    .map_err(|e| invalid(format!("could not start the revocations thread: {e}")))
}
