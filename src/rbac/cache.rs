//! The RBAC policy cache: the project policy and per-organization custom roles, each
//! in a [`Slot`], and the local decision against them.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::decision::{Denial, Granting, Grants, decide};
use super::resource_action::ResourceAction;
use super::slot::{Slot, age, refresh_ahead};
use super::verdict::Verdict;
use crate::caller::{Caller, ConnectedAppCaller};
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

/// Who an RBAC decision is about: a member (by the session's roles) or a Connected
/// App (by the token's scopes).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Subject<'a> {
    Member(&'a AuthenticatedMember),
    App(&'a ConnectedAppCaller),
}

impl<'a> Subject<'a> {
    /// The subject a caller is; `None` for an M2M token (no role or policy scope
    /// covers it).
    pub(crate) fn of(caller: &'a Caller) -> Option<Self> {
        match caller {
            Caller::Member(member) => Some(Subject::Member(member)),
            Caller::ConnectedApp(app) => Some(Subject::App(app)),
            Caller::M2m(_) => None,
        }
    }

    /// The subject's own organization.
    pub(crate) fn organization_id(self) -> &'a str {
        match self {
            Subject::Member(member) => member.organization_id(),
            Subject::App(app) => app.organization_id(),
        }
    }
}

/// The project policy, compiled: what roles grant (member sessions) and what scopes
/// grant (Connected-App tokens).
#[derive(Debug, Default)]
pub(crate) struct ProjectPolicy {
    roles: Grants,
    scopes: Grants,
}

/// The project's RBAC policy and organizations' custom roles.
pub(crate) struct PolicyCache {
    fetcher: Arc<Fetcher>,
    clock: SharedClock,
    ttl: Duration,
    /// [`refresh_ahead`] of `ttl`, computed once: the synchronous path's bound.
    fresh_for: Duration,
    grace: Duration,
    project: Arc<Slot<ProjectPolicy>>,
    /// Size-bounded; a lookup is one read lock (on the path of every guarded request).
    organizations: quick_cache::sync::Cache<String, Arc<Slot<Grants>>>,
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

    async fn project_policy(&self) -> Option<Arc<Stamped<ProjectPolicy>>> {
        let fetcher = Arc::clone(&self.fetcher);
        self.project
            .get(self.clock.now(), self.ttl, self.grace, move || async move {
                let call = fetcher.client.policy();
                let policy = fetcher.fetch(call, None).await?;
                Some(ProjectPolicy {
                    roles: Grants::of_roles(&policy.policy.roles),
                    scopes: Grants::of_scopes(&policy.policy.scopes),
                })
            })
            .await
    }

    fn organization_slot(&self, organization_id: &str) -> Arc<Slot<Grants>> {
        let Ok(slot) = self.organizations.get_or_insert_with(organization_id, || {
            Ok::<_, std::convert::Infallible>(Arc::new(Slot::new(
                self.clock.clone(),
                self.fetcher.client.call_deadline(),
            )))
        });
        slot
    }

    async fn organization_roles(&self, organization_id: &str) -> Option<Arc<Stamped<Grants>>> {
        let slot = self.organization_slot(organization_id);
        let fetcher = Arc::clone(&self.fetcher);
        let org = organization_id.to_owned();
        slot.get(self.clock.now(), self.ttl, self.grace, move || async move {
            let call = fetcher.client.org_policy(&org);
            let policy = fetcher.fetch(call, Some(&org)).await?;
            Some(Grants::of_roles(&policy.org_policy.roles))
        })
        .await
    }

    /// Decides at once for `subject` when what the decision needs is cached and fresh
    /// at `now` (the common case: no clone, no fetch, no await). `None` when a fetch or
    /// refresh is due: use [`decide`](Self::decide).
    pub(crate) fn decide_cached(
        &self,
        subject: Subject<'_>,
        organization_id: &str,
        wanted: &ResourceAction,
        now: SystemTime,
    ) -> Option<Result<Verdict, Failure>> {
        match subject {
            Subject::Member(member) => {
                self.decide_member_cached(member, organization_id, wanted, now)
            }
            Subject::App(app) => self.decide_for_app_cached(app, organization_id, wanted, now),
        }
    }

    /// Decides locally for `subject` at `now` (the clock reading the request was
    /// authenticated at, or a fresh one): a member by roles, a Connected App by scopes.
    pub(crate) async fn decide(
        &self,
        subject: Subject<'_>,
        organization_id: &str,
        wanted: &ResourceAction,
        now: SystemTime,
    ) -> Result<Verdict, Failure> {
        match subject {
            Subject::Member(member) => {
                self.decide_member(member, organization_id, wanted, now)
                    .await
            }
            Subject::App(app) => self.decide_for_app(app, organization_id, wanted, now).await,
        }
    }

    /// Decides at once when the project policy and the organization's custom roles are
    /// both cached and fresh at `now`.
    fn decide_member_cached(
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
    async fn decide_member(
        &self,
        member: &AuthenticatedMember,
        organization_id: &str,
        wanted: &ResourceAction,
        now: SystemTime,
    ) -> Result<Verdict, Failure> {
        if let Some(decided) = self.decide_member_cached(member, organization_id, wanted, now) {
            return decided;
        }
        // Both at once: after a quiet spell each may wait for its refresh.
        let (project, org) = tokio::join!(
            self.project_policy(),
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

    /// Decides at once for a Connected App when the project policy is cached and
    /// fresh at `now`; `None` when a fetch or refresh is due.
    fn decide_for_app_cached(
        &self,
        app: &ConnectedAppCaller,
        organization_id: &str,
        wanted: &ResourceAction,
        now: SystemTime,
    ) -> Option<Result<Verdict, Failure>> {
        if app.organization_id() != organization_id {
            return Some(Err(deny(Reason::TenancyMismatch, wanted, organization_id)));
        }
        self.project.with_fresh(now, self.fresh_for, |project| {
            decide_for_app_with(project, app, organization_id, wanted, now)
        })
    }

    /// Decides for a Connected App with the project policy's scopes, at `now`.
    async fn decide_for_app(
        &self,
        app: &ConnectedAppCaller,
        organization_id: &str,
        wanted: &ResourceAction,
        now: SystemTime,
    ) -> Result<Verdict, Failure> {
        if let Some(decided) = self.decide_for_app_cached(app, organization_id, wanted, now) {
            return decided;
        }
        match self.project_policy().await {
            Some(project) => decide_for_app_with(&project, app, organization_id, wanted, now),
            None => Err(deny(Reason::StytchUnavailable, wanted, organization_id)
                .retry_after(self.retry_after(organization_id, true, false))),
        }
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
    project: &Stamped<ProjectPolicy>,
    organization: Option<&Grants>,
    member: &AuthenticatedMember,
    organization_id: &str,
    wanted: &ResourceAction,
    now: SystemTime,
) -> Result<Verdict, Failure> {
    let result = decide(
        &project.value.roles,
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
            allowed(wanted, organization_id, policy_age);
            Ok(Verdict::new(member.clone(), granting, wanted.clone()))
        }
        Err(_) if !with_org_roles => Err(deny(Reason::StytchUnavailable, wanted, organization_id)),
        Err(Denial::TenancyMismatch) => Err(deny(Reason::TenancyMismatch, wanted, organization_id)),
        Err(Denial::PermissionDenied) => {
            Err(deny(Reason::PermissionDenied, wanted, organization_id))
        }
    }
}

/// Decides for a Connected App with the project policy's scopes (wire spec tokens
/// §2.5: the token's organization, then any of its scopes granting the permission;
/// organizations' custom roles do not apply). A denial names the scopes that would
/// have granted it.
fn decide_for_app_with(
    project: &Stamped<ProjectPolicy>,
    app: &ConnectedAppCaller,
    organization_id: &str,
    wanted: &ResourceAction,
    now: SystemTime,
) -> Result<Verdict, Failure> {
    let scopes = &project.value.scopes;
    let result = decide(
        scopes,
        None,
        app.organization_id(),
        organization_id,
        app.scopes(),
        wanted.resource(),
        wanted.action(),
    );
    match result {
        Ok(granting) => {
            allowed(wanted, organization_id, || age(project, now));
            Ok(Verdict::for_app(app.clone(), granting, wanted.clone()))
        }
        Err(Denial::TenancyMismatch) => Err(deny(Reason::TenancyMismatch, wanted, organization_id)),
        Err(Denial::PermissionDenied) => {
            let needed = scopes.granting(wanted.resource(), wanted.action());
            let needed = (!needed.is_empty()).then(|| Arc::from(needed.join(" ")));
            Err(deny(Reason::InsufficientScope, wanted, organization_id).needing_scope(needed))
        }
    }
}

/// A positive answer, logged.
fn allowed(wanted: &ResourceAction, organization_id: &str, policy_age: impl FnOnce() -> Duration) {
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
