//! The RBAC policy cache: project policy and per-organization custom roles, each
//! refreshed on use after its TTL, served stale during a bounded grace, shared fetches.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;

use super::decision::{CompiledRoles, Denial, Granting, decide};
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
            // A fetch may have succeeded since `seen` was loaded.
            return self.current.load_full().filter(|current| {
                now.duration_since(current.fetched_at)
                    .unwrap_or(Duration::ZERO)
                    < ttl + grace
            });
        }
        self.refresh(clock.clone(), seen, fetch).await.ok()
    }

    /// Runs `f` on the value if it was fetched less than `ttl` before `now`, without
    /// waiting or fetching.
    fn with_fresh<R>(
        &self,
        now: SystemTime,
        ttl: Duration,
        f: impl FnOnce(&Stamped<T>) -> R,
    ) -> Option<R> {
        let current = self.current.load();
        let current = current.as_deref()?;
        let age = now
            .duration_since(current.fetched_at)
            .unwrap_or(Duration::ZERO);
        (age < ttl).then(|| f(current))
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
                // Another refresh failed since this one was decided on (a background
                // refresh spawned just before): no new attempt during the backoff.
                if this.backing_off(&clock) {
                    return Err(FetchFailed);
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
    /// Size-bounded; a lookup is one read lock (on the path of every guarded request).
    organizations: quick_cache::sync::Cache<String, Arc<Slot<CompiledRoles>>>,
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
            organizations: crate::bounded_cache::new(org_capacity),
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

    fn organization_slot(&self, organization_id: &str) -> Arc<Slot<CompiledRoles>> {
        let Ok(slot) = self.organizations.get_or_insert_with(organization_id, || {
            Ok::<_, std::convert::Infallible>(Arc::new(Slot::new()))
        });
        slot
    }

    async fn organization_roles(
        &self,
        organization_id: &str,
    ) -> Option<Arc<Stamped<CompiledRoles>>> {
        let slot = self.organization_slot(organization_id);
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

    /// Decides at once when the project policy and the organization's custom roles are
    /// both cached and fresh at `now` (the common case: no clone, no fetch, no await).
    /// `None` when a fetch or refresh is due: use [`decide`](Self::decide).
    pub(crate) fn decide_cached(
        &self,
        member: &AuthenticatedMember,
        organization_id: &str,
        resource: &Arc<str>,
        action: &Arc<str>,
        now: SystemTime,
    ) -> Option<Result<Verdict, Failure>> {
        if member.organization_id() != organization_id {
            return Some(Err(deny(
                Reason::TenancyMismatch,
                resource,
                action,
                organization_id,
            )));
        }
        let org = self.organizations.get(organization_id)?;
        self.project
            .with_fresh(now, self.ttl, |project| {
                org.with_fresh(now, self.ttl, |org| {
                    decide_with(
                        project,
                        Some(&org.value),
                        member,
                        organization_id,
                        resource,
                        action,
                        now,
                    )
                })
            })
            .flatten()
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
        resource: &Arc<str>,
        action: &Arc<str>,
    ) -> Result<Verdict, Failure> {
        let now = self.clock.now();
        if let Some(decided) = self.decide_cached(member, organization_id, resource, action, now) {
            return decided;
        }
        let project = self
            .project_roles()
            .await
            .ok_or_else(|| deny(Reason::StytchUnavailable, resource, action, organization_id))?;
        let org = self.organization_roles(organization_id).await;
        decide_with(
            &project,
            org.as_deref().map(|o| &o.value),
            member,
            organization_id,
            resource,
            action,
            now,
        )
    }
}

/// Decides with the project's roles and (when they could be had) the organization's
/// custom roles, and concludes: logged, and without the organization's roles a denial
/// fails closed (503).
fn decide_with(
    project: &Stamped<CompiledRoles>,
    organization: Option<&CompiledRoles>,
    member: &AuthenticatedMember,
    organization_id: &str,
    resource: &Arc<str>,
    action: &Arc<str>,
    now: SystemTime,
) -> Result<Verdict, Failure> {
    let result = decide(
        &project.value,
        organization,
        member.organization_id(),
        organization_id,
        member.roles(),
        resource,
        action,
    );
    conclude(
        result,
        organization.is_some(),
        member,
        organization_id,
        resource,
        action,
        || {
            now.duration_since(project.fetched_at)
                .unwrap_or(Duration::ZERO)
        },
    )
}

/// The answer for a local decision, logged. Without the organization's custom roles
/// (`with_org_roles == false`) a denial is not final: it fails closed (503).
fn conclude(
    result: Result<Granting, Denial>,
    with_org_roles: bool,
    member: &AuthenticatedMember,
    organization_id: &str,
    resource: &Arc<str>,
    action: &Arc<str>,
    policy_age: impl FnOnce() -> Duration,
) -> Result<Verdict, Failure> {
    match result {
        Ok(granting) => {
            if tracing::enabled!(tracing::Level::DEBUG) {
                tracing::debug!(
                    decision = "allow",
                    resource = &**resource,
                    action = &**action,
                    organization_id,
                    policy_age_secs = policy_age().as_secs(),
                    "stytch rbac decision"
                );
            }
            Ok(Verdict::new(
                member.clone(),
                granting,
                Arc::clone(resource),
                Arc::clone(action),
            ))
        }
        Err(_) if !with_org_roles => Err(deny(
            Reason::StytchUnavailable,
            resource,
            action,
            organization_id,
        )),
        Err(Denial::TenancyMismatch) => Err(deny(
            Reason::TenancyMismatch,
            resource,
            action,
            organization_id,
        )),
        Err(Denial::PermissionDenied) => Err(deny(
            Reason::PermissionDenied,
            resource,
            action,
            organization_id,
        )),
    }
}

/// A negative answer, logged.
fn deny(reason: Reason, resource: &str, action: &str, organization_id: &str) -> Failure {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::MockClock;
    use std::sync::atomic::AtomicUsize;

    /// A refresh decided on before another one failed (a background refresh spawned
    /// just before) does not fetch during the backoff.
    #[tokio::test]
    async fn a_refresh_decided_on_before_a_failure_waits_for_the_backoff() {
        let clock = SharedClock(Arc::new(MockClock::new()));
        let slot = Arc::new(Slot::<u32>::new());
        assert!(
            slot.refresh(clock.clone(), None, || async { None })
                .await
                .is_err()
        );
        let fetches = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&fetches);
        let late = slot
            .refresh(clock.clone(), None, move || async move {
                counted.fetch_add(1, Ordering::SeqCst);
                Some(1)
            })
            .await;
        assert!(late.is_err());
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            0,
            "fetched during the backoff"
        );
    }
}
