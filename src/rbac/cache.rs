//! The RBAC policy cache: project policy and per-organization custom roles, each
//! refreshed in the background in the last tenth of its TTL, waited for once past it,
//! served stale during a bounded grace only while refreshes fail, shared fetches.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;

use super::decision::{CompiledRoles, Denial, Granting, decide};
use super::resource_action::ResourceAction;
use super::verdict::Verdict;
use crate::client::{ClientError, RetryAfter, StytchClient};
use crate::clock::{SharedClock, unix_seconds};
use crate::member::AuthenticatedMember;
use crate::metrics::Metrics;
use crate::rejection::Failure;
use crate::rejection::Reason;
use crate::single_flight::SingleFlight;

/// After a failed fetch, no new attempt for this long (unless nothing usable is cached
/// and the previous attempt is older).
const RETRY_BACKOFF: Duration = Duration::from_secs(5);

/// A failed fetch counts as "refreshes are failing" (the last value then decides during
/// the grace, without waiting) for this long; after a quieter spell, the next request
/// waits for a new attempt.
const FAILING_FOR: Duration = Duration::from_secs(60);

/// The age from which a value is refreshed in the background while still served:
/// the last tenth of its TTL (30 s of the default 300 s).
fn refresh_ahead(ttl: Duration) -> Duration {
    ttl - ttl / 10
}

/// A value with the time it was fetched.
pub(crate) struct Stamped<T> {
    pub(crate) value: T,
    pub(crate) fetched_at: SystemTime,
}

impl<T> Stamped<T> {
    /// How long before `now` it was fetched; `Duration::MAX` (due, and past any
    /// grace) when the clock stepped back further than that (see [`crate::clock::age`]).
    fn age(&self, now: SystemTime) -> Duration {
        crate::clock::age(self.fetched_at, now).unwrap_or(Duration::MAX)
    }
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
    /// An empty slot whose fetches are waited for at most `deadline` by callers that
    /// join them.
    fn new(deadline: Duration) -> Self {
        Self {
            current: ArcSwapOption::empty(),
            flight: SingleFlight::new(deadline),
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
        F: FnOnce() -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Option<T>> + Send + 'static,
    {
        let now = clock.now();
        let seen = self.current.load_full();
        let max_age = ttl.saturating_add(grace);
        let within_grace = |current: &Arc<Stamped<T>>| current.age(now) < max_age;
        if let Some(current) = seen.clone() {
            let age = current.age(now);
            if age < ttl {
                // Refreshed ahead, in the background, so that a busy service never
                // waits for it.
                if age >= refresh_ahead(ttl) {
                    self.spawn_refresh(clock.clone(), seen, fetch);
                }
                return Some(current);
            }
            // Past its TTL while refreshes are failing: the last value decides during
            // the grace, and attempts go on in the background (after the backoff).
            if age < max_age && self.failed_within(clock, FAILING_FOR) {
                self.spawn_refresh(clock.clone(), seen, fetch);
                return Some(current);
            }
        }
        if self.backing_off(clock) && !self.flight.in_flight(&()) {
            // A fetch may have succeeded since `seen` was loaded.
            return self.current.load_full().filter(within_grace);
        }
        // Past its TTL (after a quiet spell, say) with refreshes working: this request
        // waits for the refresh rather than decide with a value older than the TTL. If
        // that refresh fails, the last value decides during the grace.
        match self.refresh(clock.clone(), seen, fetch).await {
            Ok(value) => Some(value),
            Err(FetchFailed) => self.current.load_full().filter(within_grace),
        }
    }

    /// Runs `f` on the value if it was fetched less than `fresh_for` before `now`
    /// ([`refresh_ahead`] of the TTL: not yet due for its refresh), without waiting or
    /// fetching.
    fn with_fresh<R>(
        &self,
        now: SystemTime,
        fresh_for: Duration,
        f: impl FnOnce(&Stamped<T>) -> R,
    ) -> Option<R> {
        let current = self.current.load();
        let current = current.as_deref()?;
        (current.age(now) < fresh_for).then(|| f(current))
    }

    /// Whether the last fetch failed (a success resets it), less than `window` ago:
    /// [`RETRY_BACKOFF`] for "no new attempt yet", [`FAILING_FOR`] for "refreshes
    /// are failing".
    fn failed_within(&self, clock: &SharedClock, window: Duration) -> bool {
        crate::clock::within(
            self.last_failure.load(Ordering::Acquire),
            window,
            clock.unix_seconds(),
        )
    }

    fn backing_off(&self, clock: &SharedClock) -> bool {
        self.failed_within(clock, RETRY_BACKOFF)
    }

    /// What is left at `now` (unix seconds) of the backoff after the last failed fetch.
    fn backoff_left(&self, now: u64) -> Duration {
        let last = self.last_failure.load(Ordering::Acquire);
        if crate::clock::within(last, RETRY_BACKOFF, now) {
            RETRY_BACKOFF.saturating_sub(Duration::from_secs(now.saturating_sub(last)))
        } else {
            Duration::ZERO
        }
    }

    /// Refreshes in the background, unless a fetch is in flight or a failed one is
    /// less than [`RETRY_BACKOFF`] old.
    fn spawn_refresh<F, Fut>(
        self: &Arc<Self>,
        clock: SharedClock,
        seen: Option<Arc<Stamped<T>>>,
        fetch: F,
    ) where
        F: FnOnce() -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Option<T>> + Send + 'static,
    {
        if self.flight.in_flight(&()) || self.backing_off(&clock) {
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
        F: FnOnce() -> Fut + Clone + Send + 'static,
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

/// What every policy fetch shares: the client, the counters, and Stytch's rate limit.
struct Fetcher {
    client: StytchClient,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    /// A 429 to the project policy's fetch stops it for its `Retry-After`.
    project_rate_limit: RetryAfter,
    /// A 429 to any organization's fetch stops them all for its `Retry-After`: with
    /// many organizations, each slot's own backoff would still let one fetch per
    /// organization through every few seconds. (Stytch limits each endpoint apart, so
    /// the project policy's fetch is not held up by it.)
    org_rate_limit: RetryAfter,
}

impl Fetcher {
    /// `call`'s answer (the project policy, or `organization_id`'s custom roles), or
    /// `None` when it failed or was not made (Stytch's rate limit still running).
    /// Counted, and logged when it fails.
    async fn fetch<R>(
        &self,
        call: impl Future<Output = Result<R, ClientError>>,
        organization_id: Option<&str>,
    ) -> Option<R> {
        let rate_limit = match organization_id {
            None => &self.project_rate_limit,
            Some(_) => &self.org_rate_limit,
        };
        if rate_limit.refusal(self.clock.unix_millis()).is_some() {
            tracing::debug!(
                organization_id,
                "RBAC policy fetch not made: Stytch's Retry-After"
            );
            return None;
        }
        self.metrics.policy_fetches.fetch_add(1, Ordering::Relaxed);
        match call.await {
            Ok(answer) => Some(answer),
            Err(error) => {
                self.metrics
                    .policy_fetch_failures
                    .fetch_add(1, Ordering::Relaxed);
                rate_limit.observe(&error, self.clock.unix_millis());
                tracing::warn!(%error, organization_id, "RBAC policy fetch failed");
                None
            }
        }
    }
}

/// The project's RBAC policy and organizations' custom roles.
pub(crate) struct PolicyCache {
    fetcher: Arc<Fetcher>,
    clock: SharedClock,
    ttl: Duration,
    /// [`refresh_ahead`] of `ttl`, computed once: the synchronous path's bound.
    fresh_for: Duration,
    grace: Duration,
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
        org_capacity: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        let deadline = client.call_deadline();
        Self {
            fetcher: Arc::new(Fetcher {
                client,
                clock: clock.clone(),
                metrics,
                project_rate_limit: RetryAfter::default(),
                org_rate_limit: RetryAfter::default(),
            }),
            clock,
            ttl,
            fresh_for: refresh_ahead(ttl),
            grace,
            project: Arc::new(Slot::new(deadline)),
            organizations: crate::bounded_cache::new(org_capacity),
        }
    }

    async fn project_roles(&self) -> Option<Arc<Stamped<CompiledRoles>>> {
        let fetcher = Arc::clone(&self.fetcher);
        self.project
            .get(&self.clock, self.ttl, self.grace, move || async move {
                let call = fetcher.client.policy();
                let policy = fetcher.fetch(call, None).await?;
                Some(CompiledRoles::new(&policy.policy.roles))
            })
            .await
    }

    fn organization_slot(&self, organization_id: &str) -> Arc<Slot<CompiledRoles>> {
        let Ok(slot) = self.organizations.get_or_insert_with(organization_id, || {
            Ok::<_, std::convert::Infallible>(Arc::new(Slot::new(
                self.fetcher.client.call_deadline(),
            )))
        });
        slot
    }

    async fn organization_roles(
        &self,
        organization_id: &str,
    ) -> Option<Arc<Stamped<CompiledRoles>>> {
        let slot = self.organization_slot(organization_id);
        let fetcher = Arc::clone(&self.fetcher);
        let org = organization_id.to_owned();
        slot.get(&self.clock, self.ttl, self.grace, move || async move {
            let call = fetcher.client.org_policy(&org);
            let policy = fetcher.fetch(call, Some(&org)).await?;
            Some(CompiledRoles::new(&policy.org_policy.roles))
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
        wanted: &ResourceAction,
        now: SystemTime,
    ) -> Option<Result<Verdict, Failure>> {
        if member.organization_id() != organization_id {
            return Some(Err(deny(Reason::TenancyMismatch, wanted, organization_id)));
        }
        let org = self.organizations.get(organization_id)?;
        self.project
            .with_fresh(now, self.fresh_for, |project| {
                org.with_fresh(now, self.fresh_for, |org| {
                    decide_with(
                        project,
                        Some(&org.value),
                        member,
                        organization_id,
                        wanted,
                        now,
                    )
                })
            })
            .flatten()
    }

    /// Decides locally for a member whose roles are known, at `now` (the clock reading
    /// the request was authenticated at, or a fresh one).
    ///
    /// Tenancy is checked first (no fetch needed). Organization custom roles can only
    /// add permissions, so when they cannot be fetched a grant by the project policy
    /// still stands; a denial then fails closed (503).
    pub(crate) async fn decide(
        &self,
        member: &AuthenticatedMember,
        organization_id: &str,
        wanted: &ResourceAction,
        now: SystemTime,
    ) -> Result<Verdict, Failure> {
        if let Some(decided) = self.decide_cached(member, organization_id, wanted, now) {
            return decided;
        }
        // Both at once: after a quiet spell each may wait for its refresh.
        let (project, org) = tokio::join!(
            self.project_roles(),
            self.organization_roles(organization_id)
        );
        let decided = match &project {
            Some(project) => decide_with(
                project,
                org.as_deref().map(|o| &o.value),
                member,
                organization_id,
                wanted,
                now,
            ),
            None => Err(deny(Reason::StytchUnavailable, wanted, organization_id)),
        };
        decided.map_err(|failure| {
            if failure.reason == Reason::StytchUnavailable {
                let wait = self.retry_after(organization_id, project.is_none(), org.is_none());
                failure.retry_after(wait)
            } else {
                failure
            }
        })
    }

    /// When a decision that lacked the project policy (`project`) or the
    /// organization's custom roles (`organization`) can next have them fetched: the
    /// longest of the failed fetches' backoffs and Stytch's `Retry-After`; at least 1 s.
    fn retry_after(&self, organization_id: &str, project: bool, organization: bool) -> Duration {
        let now_ms = self.clock.unix_millis();
        let now = now_ms / 1000;
        let none = [Duration::ZERO; 2];
        let project_waits = if project {
            [
                self.project.backoff_left(now),
                self.fetcher.project_rate_limit.remaining(now_ms),
            ]
        } else {
            none
        };
        let organization_waits = if organization {
            let slot = self.organizations.get(organization_id);
            [
                slot.map_or(Duration::ZERO, |slot| slot.backoff_left(now)),
                self.fetcher.org_rate_limit.remaining(now_ms),
            ]
        } else {
            none
        };
        let longest = project_waits.into_iter().chain(organization_waits).max();
        longest.unwrap_or_default().max(Duration::from_secs(1))
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
    wanted: &ResourceAction,
    now: SystemTime,
) -> Result<Verdict, Failure> {
    let result = decide(
        &project.value,
        organization,
        member.organization_id(),
        organization_id,
        member.roles(),
        wanted.resource(),
        wanted.action(),
    );
    conclude(
        result,
        organization.is_some(),
        member,
        organization_id,
        wanted,
        || project.age(now),
    )
}

/// The answer for a local decision, logged. Without the organization's custom roles
/// (`with_org_roles == false`) a denial is not final: it fails closed (503).
fn conclude(
    result: Result<Granting, Denial>,
    with_org_roles: bool,
    member: &AuthenticatedMember,
    organization_id: &str,
    wanted: &ResourceAction,
    policy_age: impl FnOnce() -> Duration,
) -> Result<Verdict, Failure> {
    match result {
        Ok(granting) => {
            if tracing::enabled!(tracing::Level::DEBUG) {
                tracing::debug!(
                    decision = "allow",
                    resource = wanted.resource(),
                    action = wanted.action(),
                    organization_id,
                    policy_age_secs = policy_age().as_secs(),
                    "stytch rbac decision"
                );
            }
            Ok(Verdict::new(member.clone(), granting, wanted.clone()))
        }
        Err(_) if !with_org_roles => Err(deny(Reason::StytchUnavailable, wanted, organization_id)),
        Err(Denial::TenancyMismatch) => Err(deny(Reason::TenancyMismatch, wanted, organization_id)),
        Err(Denial::PermissionDenied) => {
            Err(deny(Reason::PermissionDenied, wanted, organization_id))
        }
    }
}

/// A negative answer, logged.
fn deny(reason: Reason, wanted: &ResourceAction, organization_id: &str) -> Failure {
    // Debug, as Stytch's own denials are: any member can cause one per request.
    tracing::debug!(
        decision = "deny",
        reason = reason.as_str(),
        resource = wanted.resource(),
        action = wanted.action(),
        organization_id,
        "stytch rbac decision"
    );
    Failure::new(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::MockClock;
    use std::sync::atomic::AtomicUsize;

    const TTL: Duration = Duration::from_secs(300);
    const GRACE: Duration = Duration::from_secs(900);

    fn answering(value: Option<u32>) -> impl FnOnce() -> std::future::Ready<Option<u32>> + Clone {
        move || std::future::ready(value)
    }

    /// A mock clock, the same clock shared, and a slot holding `1` fetched at its time.
    async fn slot_with_one() -> (MockClock, SharedClock, Arc<Slot<u32>>) {
        let mock = MockClock::new();
        let clock = SharedClock(Arc::new(mock.clone()));
        let slot = Arc::new(Slot::<u32>::new(Duration::from_secs(10)));
        let got = slot.get(&clock, TTL, GRACE, answering(Some(1))).await;
        assert_eq!(got.map(|s| s.value), Some(1));
        (mock, clock, slot)
    }

    /// After a quiet spell past the TTL, with Stytch answering, the request waits for
    /// the new value instead of deciding with the old one.
    #[tokio::test]
    async fn past_the_ttl_the_refresh_is_waited_for() {
        let (mock, clock, slot) = slot_with_one().await;
        mock.advance(Duration::from_secs(1_000));
        let got = slot.get(&clock, TTL, GRACE, answering(Some(2))).await;
        assert_eq!(got.map(|s| s.value), Some(2));
    }

    /// While refreshes fail, the last value decides during the grace, without waiting
    /// for a new attempt in the backoff; past the grace, nothing does.
    #[tokio::test]
    async fn past_the_ttl_while_refreshes_fail_the_last_value_decides_within_the_grace() {
        let (mock, clock, slot) = slot_with_one().await;
        mock.advance(TTL + Duration::from_secs(1));
        // The first request past the TTL tries, fails, and falls back.
        let got = slot.get(&clock, TTL, GRACE, answering(None)).await;
        assert_eq!(got.map(|s| s.value), Some(1));
        // The next ones do not try again during the backoff.
        let got = slot
            .get(&clock, TTL, GRACE, || async {
                panic!("fetched during the backoff")
            })
            .await;
        assert_eq!(got.map(|s| s.value), Some(1));
        mock.advance(GRACE);
        let got = slot.get(&clock, TTL, GRACE, answering(None)).await;
        assert!(got.is_none(), "decided with a value past TTL + grace");
    }

    /// A failure long past (before a quiet spell) does not count as "refreshes are
    /// failing": the next request waits for a new attempt instead of deciding with a
    /// value far older than the TTL.
    #[tokio::test]
    async fn an_old_failure_does_not_make_a_stale_value_decide() {
        let (mock, clock, slot) = slot_with_one().await;
        mock.advance(TTL + Duration::from_secs(1));
        let got = slot.get(&clock, TTL, GRACE, answering(None)).await;
        assert_eq!(
            got.map(|s| s.value),
            Some(1),
            "the failed attempt's fallback"
        );
        mock.advance(Duration::from_secs(600));
        let got = slot.get(&clock, TTL, GRACE, answering(Some(2))).await;
        assert_eq!(got.map(|s| s.value), Some(2), "waited for the new attempt");
    }

    /// In the last tenth of the TTL the value is still served at once, and refreshed
    /// in the background; the synchronous path leaves that window to `get`.
    #[tokio::test]
    async fn refreshed_ahead_in_the_last_tenth_of_the_ttl() {
        let (mock, clock, slot) = slot_with_one().await;
        mock.advance(Duration::from_secs(269));
        assert_eq!(
            slot.with_fresh(clock.now(), refresh_ahead(TTL), |s| s.value),
            Some(1)
        );
        mock.advance(Duration::from_secs(2));
        assert_eq!(
            slot.with_fresh(clock.now(), refresh_ahead(TTL), |s| s.value),
            None
        );
        let got = slot.get(&clock, TTL, GRACE, answering(Some(2))).await;
        assert_eq!(got.map(|s| s.value), Some(1), "served at once");
        for _ in 0..100 {
            if slot.with_fresh(clock.now(), refresh_ahead(TTL), |s| s.value) == Some(2) {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the background refresh did not land");
    }

    /// A refresh decided on before another one failed (a background refresh spawned
    /// just before) does not fetch during the backoff.
    #[tokio::test]
    async fn a_refresh_decided_on_before_a_failure_waits_for_the_backoff() {
        let clock = SharedClock(Arc::new(MockClock::new()));
        let slot = Arc::new(Slot::<u32>::new(Duration::from_secs(10)));
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
