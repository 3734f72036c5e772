//! The JWKS cache: lock-free reads, shared refreshes, bounded staleness, and at most
//! one unknown-`kid` refresh per cooldown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use super::keys::KeySet;
use crate::client::{ClientError, StytchClient};
use crate::clock::{SharedClock, unix_seconds};
use crate::metrics::Metrics;
use crate::single_flight::SingleFlight;

/// JWKS refresh timing.
#[derive(Debug, Clone)]
pub(crate) struct JwksSettings {
    /// Keys older than this are refreshed in the background while still served.
    pub(crate) refresh_interval: Duration,
    /// Minimum time between refreshes forced by an unknown `kid`, and between attempts
    /// after a failed fetch.
    pub(crate) cooldown: Duration,
    /// How long past `refresh_interval` keys are still served when refreshes fail.
    pub(crate) max_stale: Duration,
}

/// Why no key could be found for a `kid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyError {
    /// Stytch does not (or, within the cooldown, is not asked whether it does) publish it.
    UnknownKid,
    /// No usable key set: Stytch could not be reached.
    Unavailable,
}

/// Why no key set came of a flight (shared by every caller): Stytch's answer, or
/// `None` when the flight did not ask (within a cooldown, or its task was dropped
/// with the runtime).
#[derive(Debug, Clone)]
struct FetchFailed(Option<Arc<ClientError>>);

impl FetchFailed {
    const NOT_FETCHED: Self = Self(None);
}

/// Why the keys are fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// Nothing usable is loaded, or the refresh interval passed (in the background).
    /// Never within the failure cooldown: the caller checked it, and the flight checks
    /// it again (a refresh decided on just before another one failed must not fetch).
    Due,
    /// [`StytchAuth::warm_up`](crate::StytchAuth::warm_up): fetches whatever the
    /// cooldowns.
    WarmUp,
    /// A `kid` the loaded keys do not hold: at most once per cooldown.
    UnknownKid,
}

/// A fetched key set as the answer for `kid`.
fn holding(fetched: Result<Arc<KeySet>, FetchFailed>, kid: &str) -> Result<Arc<KeySet>, KeyError> {
    match fetched {
        Ok(set) if set.get(kid).is_some() => Ok(set),
        Ok(_) => Err(KeyError::UnknownKid),
        Err(_) => Err(KeyError::Unavailable),
    }
}

/// Told the `kid`s of keys a new key set no longer holds, once that set is stored.
pub(crate) type OnRetired = Box<dyn Fn(&[Arc<str>]) + Send + Sync>;

pub(crate) struct JwksCache {
    client: StytchClient,
    clock: SharedClock,
    settings: JwksSettings,
    metrics: Arc<Metrics>,
    current: ArcSwapOption<KeySet>,
    flight: SingleFlight<(), Result<Arc<KeySet>, FetchFailed>>,
    /// Unix seconds of the last refresh forced by an unknown `kid`.
    last_forced: AtomicU64,
    /// Unix seconds of the last failed fetch (0: none since the last success).
    last_failure: AtomicU64,
    on_retired: OnRetired,
}

impl JwksCache {
    pub(crate) fn new(
        client: StytchClient,
        clock: SharedClock,
        settings: JwksSettings,
        metrics: Arc<Metrics>,
        on_retired: OnRetired,
    ) -> Arc<Self> {
        let deadline = client.call_deadline();
        Arc::new(Self {
            client,
            clock,
            settings,
            metrics,
            current: ArcSwapOption::empty(),
            flight: SingleFlight::new(deadline),
            last_forced: AtomicU64::new(0),
            last_failure: AtomicU64::new(0),
            on_retired,
        })
    }

    /// Whether the loaded key set holds `kid` (a key retired from Stytch's JWKS is no
    /// longer held once the set without it is loaded).
    pub(crate) fn holds(&self, kid: &str) -> bool {
        self.current
            .load()
            .as_deref()
            .is_some_and(|set| set.get(kid).is_some())
    }

    /// The key set that holds `kid`, fetching or refreshing as the rules allow.
    pub(crate) async fn key_set_for(self: &Arc<Self>, kid: &str) -> Result<Arc<KeySet>, KeyError> {
        let seen = self.current.load_full();
        let usable = seen.clone().filter(|set| self.still_serving(set));
        let Some(set) = usable else {
            // Nothing (usable) loaded: every request needs the keys, so wait for them,
            // but do not retry a failed fetch before the cooldown has passed.
            if self.failed_recently() && !self.flight.in_flight(&()) {
                // A fetch may have succeeded since `seen` was loaded.
                return match self.current.load_full() {
                    Some(now) if self.still_serving(&now) => holding(Ok(now), kid),
                    _ => Err(KeyError::Unavailable),
                };
            }
            return holding(self.fetch(seen, Trigger::Due).await, kid);
        };
        if set.get(kid).is_some() {
            return Ok(set);
        }
        // Unknown kid (a key rotation, or a forged token): refresh at most once per
        // cooldown; concurrent requests join the refresh in progress. The cooldown is
        // read before the flight table: the refresh that claimed it registered its
        // flight first (see `fetch`), so a request that sees the claim either joins
        // that refresh or finds its keys already stored.
        if self.forced_refresh_cooling_down() && !self.flight.in_flight(&()) {
            return match self.current.load_full() {
                Some(now) if now.get(kid).is_some() => Ok(now),
                // The last attempt failed: whether Stytch publishes this kid is unknown.
                _ if self.failed_recently() => Err(KeyError::Unavailable),
                _ => Err(KeyError::UnknownKid),
            };
        }
        match self.fetch(seen, Trigger::UnknownKid).await {
            // The fetch joined (or found) a scheduled refresh, which did not claim
            // this cooldown's forced refresh and may have been answered before the
            // key was published: ask once more, as the forced refresh.
            Ok(set) if set.get(kid).is_none() && !self.forced_refresh_cooling_down() => {
                holding(self.fetch(Some(set), Trigger::UnknownKid).await, kid)
            }
            fetched => holding(fetched, kid),
        }
    }

    /// The loaded key set, when it holds `kid` and may still be served, without
    /// waiting (starts a background refresh when it is due).
    pub(crate) fn serving_set_with(self: &Arc<Self>, kid: &str) -> Option<Arc<KeySet>> {
        let set = self.current.load_full()?;
        (set.get(kid).is_some() && self.still_serving(&set)).then_some(set)
    }

    fn still_serving(self: &Arc<Self>, set: &Arc<KeySet>) -> bool {
        // Unknown after the clock stepped back: due, and refreshed in the background,
        // but still served (a key's age decides no permission; the keys stay served
        // until the clock is back past their fetch, then for the usual time).
        let age = crate::clock::age(set.fetched_at, self.clock.now());
        if age.is_none_or(|age| age > self.settings.refresh_interval) {
            self.refresh_in_background(Some(Arc::clone(set)));
        }
        age.is_none_or(|age| {
            age <= self
                .settings
                .refresh_interval
                .saturating_add(self.settings.max_stale)
        })
    }

    /// Fetches the keys now (used for warm-up), whatever the cooldowns. Joins a fetch
    /// in progress; when that one did not ask Stytch, fetches once more on its own.
    pub(crate) async fn refresh(self: &Arc<Self>) -> Result<(), ClientError> {
        let fetched = match self.fetch(self.current.load_full(), Trigger::WarmUp).await {
            Err(FetchFailed(None)) => self.fetch(self.current.load_full(), Trigger::WarmUp).await,
            fetched => fetched,
        };
        match fetched {
            Ok(_) => Ok(()),
            Err(FetchFailed(Some(error))) => Err(error.duplicate()),
            Err(FetchFailed(None)) => Err(ClientError::transport(
                "the JWKS fetch was not made (the runtime is shutting down?)",
            )),
        }
    }

    /// When a client refused for missing keys should try again: the failed-fetch cooldown.
    pub(crate) fn retry_after(&self) -> Duration {
        self.settings.cooldown
    }

    fn failed_recently(&self) -> bool {
        self.within_cooldown(self.last_failure.load(Ordering::Acquire))
    }

    /// Whether a refresh forced by an unknown `kid` ran within the cooldown.
    fn forced_refresh_cooling_down(&self) -> bool {
        self.within_cooldown(self.last_forced.load(Ordering::Acquire))
    }

    /// Whether `since` (unix seconds, 0: never) is less than a cooldown ago.
    fn within_cooldown(&self, since: u64) -> bool {
        crate::clock::within(since, self.settings.cooldown, self.clock.unix_seconds())
    }

    /// Claims this cooldown's forced refresh. Only called inside the flight that will
    /// fetch, so that the claim is never visible before the flight is.
    fn claim_forced_refresh(&self) -> bool {
        let last = self.last_forced.load(Ordering::Acquire);
        if self.within_cooldown(last) {
            return false;
        }
        let now = self.clock.unix_seconds();
        self.last_forced
            .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn refresh_in_background(self: &Arc<Self>, seen: Option<Arc<KeySet>>) {
        if self.flight.in_flight(&()) || self.failed_recently() {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let this = Arc::clone(self);
            handle.spawn(async move {
                let _ = this.fetch(seen, Trigger::Due).await;
            });
        }
    }

    /// Fetches, unless the keys changed since the caller saw `seen` (then the newer set
    /// is the answer): a caller that looked just before another fetch completed must
    /// not start a second one. Joins the fetch in progress.
    ///
    /// For an unknown `kid`, the fetch also needs this cooldown's forced refresh,
    /// claimed here, inside the flight, which `SingleFlight` registers before its work
    /// can run: a request that sees the claim finds the flight (or, once it is over, its
    /// keys).
    async fn fetch(
        self: &Arc<Self>,
        seen: Option<Arc<KeySet>>,
        trigger: Trigger,
    ) -> Result<Arc<KeySet>, FetchFailed> {
        let this = Arc::clone(self);
        self.flight
            .run((), move || async move {
                match this.current.load_full() {
                    // A fetch that completed since this caller looked is as fresh as a
                    // new one: use it instead of asking again.
                    Some(now) if !seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, &now)) => Ok(now),
                    // Another unknown kid's refresh ran within the cooldown: answer with
                    // the keys there are.
                    now if trigger == Trigger::UnknownKid && !this.claim_forced_refresh() => {
                        now.ok_or(FetchFailed::NOT_FETCHED)
                    }
                    // Another fetch failed since this one was decided on.
                    _ if trigger == Trigger::Due && this.failed_recently() => {
                        Err(FetchFailed::NOT_FETCHED)
                    }
                    _ => this.fetch_now().await,
                }
            })
            .await
            .unwrap_or(Err(FetchFailed::NOT_FETCHED))
    }

    async fn fetch_now(&self) -> Result<Arc<KeySet>, FetchFailed> {
        self.metrics.jwks_fetches.fetch_add(1, Ordering::Relaxed);
        let result = self.client.jwks().await;
        let now = self.clock.now();
        let outcome = match result {
            Ok(jwks) => {
                let (set, skipped) = KeySet::from_jwks(&jwks, now);
                if skipped > 0 {
                    tracing::warn!(
                        skipped,
                        "JWKS contained keys that are not RS256 signing keys; ignored"
                    );
                }
                if set.len() == 0 {
                    tracing::error!(
                        "JWKS answered without a usable RS256 key; keeping the previous keys"
                    );
                    Err(FetchFailed(Some(Arc::new(ClientError::unexpected(
                        http::StatusCode::OK,
                        "the JWKS has no usable RS256 signing key",
                    )))))
                } else {
                    tracing::debug!(keys = set.len(), "JWKS refreshed");
                    Ok(Arc::new(set))
                }
            }
            Err(error) => {
                tracing::warn!(%error, "JWKS fetch failed");
                Err(FetchFailed(Some(Arc::new(error))))
            }
        };
        match &outcome {
            Ok(set) => {
                let previous = self.current.swap(Some(Arc::clone(set)));
                self.last_failure.store(0, Ordering::Release);
                let retired = previous.map(|p| p.retired_in(set)).unwrap_or_default();
                if !retired.is_empty() {
                    tracing::info!(
                        retired = ?retired,
                        "Stytch retired signing keys: JWTs they signed are refused from now on"
                    );
                    (self.on_retired)(&retired);
                }
            }
            Err(_) => {
                self.metrics
                    .jwks_fetch_failures
                    .fetch_add(1, Ordering::Relaxed);
                self.last_failure
                    .store(unix_seconds(now).max(1), Ordering::Release);
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Endpoint, Fault, StytchEmulator};

    /// A refresh decided on before another fetch failed (a background refresh spawned
    /// just before) does not fetch within the failure cooldown; a warm-up does.
    #[tokio::test]
    async fn a_refresh_decided_on_before_a_failure_waits_for_the_cooldown() {
        let emu = StytchEmulator::start().await;
        let auth = emu.auth_builder().build().expect("a valid configuration");
        let jwks = &auth.inner.jwks;
        jwks.refresh().await.expect("the keys");
        let seen = jwks.current.load_full();
        emu.inject_fault(
            Endpoint::Jwks,
            Fault::Status {
                status: 500,
                times: 10,
            },
        );
        assert!(jwks.fetch(seen.clone(), Trigger::WarmUp).await.is_err());
        let asked = emu.requests(Endpoint::Jwks);
        assert!(jwks.fetch(seen.clone(), Trigger::Due).await.is_err());
        assert_eq!(
            emu.requests(Endpoint::Jwks),
            asked,
            "fetched within the failure cooldown"
        );
        assert!(jwks.fetch(seen, Trigger::WarmUp).await.is_err());
        assert_eq!(emu.requests(Endpoint::Jwks), asked + 1, "a warm-up fetches");
        // The warm-up says why.
        let error = jwks.refresh().await.expect_err("Stytch answers 500");
        assert_eq!(
            error.status(),
            Some(http::StatusCode::INTERNAL_SERVER_ERROR)
        );
    }

    /// A warm-up that joins a fetch which then decides not to ask Stytch (a refresh
    /// within the failure cooldown) asks on its own: its answer is Stytch's.
    #[tokio::test]
    async fn a_warm_up_that_joined_a_fetch_that_did_not_ask_fetches_itself() {
        let emu = StytchEmulator::start().await;
        let auth = emu.auth_builder().build().expect("a valid configuration");
        let jwks = &auth.inner.jwks;
        emu.inject_fault(
            Endpoint::Jwks,
            Fault::Status {
                status: 500,
                times: 1,
            },
        );
        assert!(
            jwks.refresh().await.is_err(),
            "the failure starts the cooldown"
        );
        let asked = emu.requests(Endpoint::Jwks);
        // A refresh in flight (its task not run yet, on this one-thread runtime) that
        // will find the cooldown running.
        let mut due = Box::pin(jwks.fetch(None, Trigger::Due));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(due.as_mut().poll(&mut cx).is_pending());
        jwks.refresh().await.expect("the warm-up's own fetch");
        assert_eq!(
            jwks.flight.joined(),
            1,
            "the warm-up joined the refresh first"
        );
        assert_eq!(
            emu.requests(Endpoint::Jwks),
            asked + 1,
            "one fetch: the warm-up's"
        );
        assert!(
            matches!(due.await, Err(FetchFailed(None))),
            "the refresh did not ask"
        );
    }
}
