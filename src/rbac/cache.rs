//! The RBAC policy cache: project policy and per-organization custom roles, each
//! refreshed on use after its TTL, served stale during a bounded grace, shared fetches.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;

use super::decision::{CompiledRoles, Denial, decide};
use super::verdict::Verdict;
use crate::client::StytchClient;
use crate::clock::{SharedClock, unix_seconds};
use crate::error::Reason;
use crate::member::AuthenticatedMember;
use crate::metrics::Metrics;
use crate::request_auth::Failure;
use crate::single_flight::SingleFlight;

/// After a failed fetch, no new attempt for this long (unless nothing usable is cached
/// and the previous attempt is older).
const RETRY_BACKOFF: Duration = Duration::from_secs(5);

/// A value with the time it was fetched.
pub(crate) struct Stamped<T> {
    pub(crate) value: T,
    pub(crate) fetched_at: SystemTime,
}

#[derive(Debug, Clone, Copy)]
struct FetchFailed;

type Fetched<T> = Result<Arc<Stamped<T>>, FetchFailed>;

/// One cached value with TTL, stale-while-revalidate, grace and single-flight refresh.
struct Slot<T> {
    current: ArcSwapOption<Stamped<T>>,
    flight: SingleFlight<(), Fetched<T>>,
    last_failure: AtomicU64,
}

impl<T: Send + Sync + 'static> Slot<T> {
    fn new() -> Self {
        Self {
            current: ArcSwapOption::empty(),
            flight: SingleFlight::new(),
            last_failure: AtomicU64::new(0),
        }
    }

    /// The value if usable now (fetching it, or refreshing it in the background when
    /// due); `None` when nothing usable can be had.
    async fn get<F, Fut>(
        self: &Arc<Self>,
        clock: &SharedClock,
        ttl: Duration,
        grace: Duration,
        fetch: F,
    ) -> Option<Arc<Stamped<T>>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Option<T>> + Send + 'static,
    {
        let now = clock.now();
        let seen = self.current.load_full();
        if let Some(current) = seen.clone() {
            let age = now
                .duration_since(current.fetched_at)
                .unwrap_or(Duration::ZERO);
            if age < ttl {
                return Some(current);
            }
            if age < ttl + grace {
                if !self.backing_off(clock) {
                    self.spawn_refresh(clock.clone(), seen, fetch);
                }
                return Some(current);
            }
        }
        if self.backing_off(clock) && !self.flight.in_flight(&()) {
            return None;
        }
        self.refresh(clock.clone(), seen, fetch).await.ok()
    }

    fn backing_off(&self, clock: &SharedClock) -> bool {
        let failed = self.last_failure.load(Ordering::Acquire);
        failed != 0 && clock.unix_seconds() < failed.saturating_add(RETRY_BACKOFF.as_secs())
    }

    fn spawn_refresh<F, Fut>(
        self: &Arc<Self>,
        clock: SharedClock,
        seen: Option<Arc<Stamped<T>>>,
        fetch: F,
    ) where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Option<T>> + Send + 'static,
    {
        if self.flight.in_flight(&()) {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let this = Arc::clone(self);
            handle.spawn(async move {
                let _ = this.refresh(clock, seen, fetch).await;
            });
        }
    }

    /// Fetches, unless the value changed since the caller saw `seen` (then that newer
    /// value is the answer): a caller that looked just before another fetch completed
    /// must not start a second one.
    async fn refresh<F, Fut>(
        self: &Arc<Self>,
        clock: SharedClock,
        seen: Option<Arc<Stamped<T>>>,
        fetch: F,
    ) -> Fetched<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Option<T>> + Send + 'static,
    {
        let this = Arc::clone(self);
        self.flight
            .run((), move || async move {
                // Another refresh completed since this caller looked: use its value.
                if let Some(now) = this.current.load_full()
                    && !seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, &now))
                {
                    return Ok(now);
                }
                let fetched = fetch().await;
                let now = clock.now();
                match fetched {
                    Some(value) => {
                        let stamped = Arc::new(Stamped {
                            value,
                            fetched_at: now,
                        });
                        this.current.store(Some(Arc::clone(&stamped)));
                        this.last_failure.store(0, Ordering::Release);
                        Ok(stamped)
                    }
                    None => {
                        this.last_failure
                            .store(unix_seconds(now).max(1), Ordering::Release);
                        Err(FetchFailed)
                    }
                }
            })
            .await
            .unwrap_or(Err(FetchFailed))
    }
}

/// The project's RBAC policy and organizations' custom roles.
pub(crate) struct PolicyCache {
    client: StytchClient,
    clock: SharedClock,
    ttl: Duration,
    grace: Duration,
    metrics: Arc<Metrics>,
    project: Arc<Slot<CompiledRoles>>,
    organizations: moka::sync::Cache<String, Arc<Slot<CompiledRoles>>>,
}

impl PolicyCache {
    pub(crate) fn new(
        client: StytchClient,
        clock: SharedClock,
        ttl: Duration,
        grace: Duration,
        org_capacity: u64,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client,
            clock,
            ttl,
            grace,
            metrics,
            project: Arc::new(Slot::new()),
            organizations: moka::sync::Cache::builder()
                .max_capacity(org_capacity.max(1))
                .build(),
        }
    }

    async fn project_roles(&self) -> Option<Arc<Stamped<CompiledRoles>>> {
        let client = self.client.clone();
        let metrics = Arc::clone(&self.metrics);
        self.project
            .get(&self.clock, self.ttl, self.grace, move || async move {
                metrics.policy_fetches.fetch_add(1, Ordering::Relaxed);
                match client.policy().await {
                    Ok(r) => Some(CompiledRoles::new(&r.policy.roles)),
                    Err(error) => {
                        tracing::warn!(%error, "RBAC policy fetch failed");
                        None
                    }
                }
            })
            .await
    }

    async fn organization_roles(
        &self,
        organization_id: &str,
    ) -> Option<Arc<Stamped<CompiledRoles>>> {
        let slot = self
            .organizations
            .get_with_by_ref(organization_id, || Arc::new(Slot::new()));
        let client = self.client.clone();
        let metrics = Arc::clone(&self.metrics);
        let org = organization_id.to_owned();
        slot.get(&self.clock, self.ttl, self.grace, move || async move {
            metrics.policy_fetches.fetch_add(1, Ordering::Relaxed);
            match client.org_policy(&org).await {
                Ok(r) => Some(CompiledRoles::new(&r.org_policy.roles)),
                Err(error) => {
                    tracing::warn!(%error, organization_id = %org, "organization RBAC policy fetch failed");
                    None
                }
            }
        })
        .await
    }

    /// Decides locally for a member whose roles are known.
    ///
    /// Tenancy is checked first (no fetch needed). Organization custom roles can only
    /// add permissions, so when they cannot be fetched a grant by the project policy
    /// still stands; a denial then fails closed (503).
    pub(crate) async fn decide(
        &self,
        member: &AuthenticatedMember,
        organization_id: &str,
        resource: &str,
        action: &str,
    ) -> Result<Verdict, Failure> {
        let deny = |reason: Reason| {
            tracing::info!(
                decision = "deny",
                reason = reason.as_str(),
                resource,
                action,
                organization_id,
                "stytch rbac decision"
            );
            let failure = Failure::new(reason);
            if reason == Reason::StytchUnavailable {
                failure.retry_after(RETRY_BACKOFF)
            } else {
                failure
            }
        };
        if member.organization_id() != organization_id {
            return Err(deny(Reason::TenancyMismatch));
        }
        let project = self
            .project_roles()
            .await
            .ok_or_else(|| deny(Reason::StytchUnavailable))?;
        let org = self.organization_roles(organization_id).await;
        let result = decide(
            &project.value,
            org.as_deref().map(|o| &o.value),
            member.organization_id(),
            organization_id,
            member.roles(),
            resource,
            action,
        );
        let policy_age = self
            .clock
            .now()
            .duration_since(project.fetched_at)
            .unwrap_or(Duration::ZERO);
        match result {
            Ok(granting) => {
                tracing::debug!(
                    decision = "allow",
                    resource,
                    action,
                    organization_id,
                    policy_age_secs = policy_age.as_secs(),
                    "stytch rbac decision"
                );
                Ok(Verdict::new(granting, organization_id, resource, action))
            }
            Err(_) if org.is_none() => Err(deny(Reason::StytchUnavailable)),
            Err(Denial::TenancyMismatch) => Err(deny(Reason::TenancyMismatch)),
            Err(Denial::PermissionDenied) => Err(deny(Reason::PermissionDenied)),
        }
    }
}
