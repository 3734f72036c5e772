//! The RBAC policy cache: the project policy and per-organization custom roles, each
//! in a [`Slot`], and the local decision against them.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::decision::{CompiledRoles, Denial, Granting, decide};
use super::resource_action::ResourceAction;
use super::slot::{Slot, age, refresh_ahead};
use super::verdict::Verdict;
use crate::client::{ClientError, RetryAfter, StytchClient};
use crate::clock::SharedClock;
use crate::member::AuthenticatedMember;
use crate::metrics::Metrics;
use crate::rejection::Failure;
use crate::rejection::Reason;
use crate::util::refresh::Stamped;

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
        self.metrics.policy_fetch();
        match call.await {
            Ok(answer) => Some(answer),
            Err(error) => {
                self.metrics.policy_fetch_failure();
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
        let project = Arc::new(Slot::new(clock.clone(), client.call_deadline()));
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
            project,
            organizations: crate::util::bounded_cache::new(org_capacity),
        }
    }

    /// How many organizations' custom roles have a slot (feature `metrics`).
    #[cfg(feature = "metrics")]
    pub(crate) fn organizations(&self) -> usize {
        self.organizations.len()
    }

    async fn project_roles(&self) -> Option<Arc<Stamped<CompiledRoles>>> {
        let fetcher = Arc::clone(&self.fetcher);
        self.project
            .get(self.clock.now(), self.ttl, self.grace, move || async move {
                let call = fetcher.client.policy();
                let policy = fetcher.fetch(call, None).await?;
                Some(CompiledRoles::new(&policy.policy.roles))
            })
            .await
    }

    fn organization_slot(&self, organization_id: &str) -> Arc<Slot<CompiledRoles>> {
        let Ok(slot) = self.organizations.get_or_insert_with(organization_id, || {
            Ok::<_, std::convert::Infallible>(Arc::new(Slot::new(
                self.clock.clone(),
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
        slot.get(self.clock.now(), self.ttl, self.grace, move || async move {
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
        let none = [Duration::ZERO; 2];
        let project_waits = if project {
            [
                self.project.backoff_left(),
                self.fetcher.project_rate_limit.remaining(now_ms),
            ]
        } else {
            none
        };
        let organization_waits = if organization {
            let slot = self.organizations.get(organization_id);
            [
                slot.map_or(Duration::ZERO, |slot| slot.backoff_left()),
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
        || age(project, now),
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
