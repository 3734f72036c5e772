//! The JWKS cache: lock-free reads, shared refreshes, bounded staleness, and at most
//! one unknown-`kid` refresh per cooldown. The fetching itself is
//! [`Refresher`](crate::util::refresh::Refresher)'s; the rules of when are here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::keys::KeySet;
use crate::client::{ClientError, StytchClient};
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::util::refresh::{Failed, Fetched, OnReplace, Refresher, Stamped};

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

/// Why the keys are fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// Nothing usable is loaded, or the refresh interval passed (in the background).
    /// Never within the failure cooldown: the caller checked it, and the fetch checks
    /// it again (a refresh decided on just before another one failed must not fetch).
    Due,
    /// [`StytchAuth::warm_up`](crate::StytchAuth::warm_up): fetches whatever the
    /// cooldowns.
    WarmUp,
    /// A `kid` the loaded keys do not hold: at most once per cooldown.
    UnknownKid,
}

type Keys = Stamped<KeySet>;

/// A fetch of the keys.
type KeysFuture = Pin<Box<dyn Future<Output = Result<KeySet, ClientError>> + Send>>;

/// A fetched key set as the answer for `kid`.
fn holding(fetched: Fetched<KeySet, ClientError>, kid: &str) -> Result<Arc<Keys>, KeyError> {
    match fetched {
        Ok(set) if set.value.get(kid).is_some() => Ok(set),
        Ok(_) => Err(KeyError::UnknownKid),
        Err(_) => Err(KeyError::Unavailable),
    }
}

/// Told the `kid`s of keys a new key set no longer holds, once that set is stored.
pub(crate) type OnRetired = Box<dyn Fn(&[Arc<str>]) + Send + Sync>;

pub(crate) struct JwksCache {
    client: StytchClient,
    settings: JwksSettings,
    metrics: Arc<Metrics>,
    keys: Arc<Refresher<KeySet, ClientError>>,
    clock: SharedClock,
    /// Unix seconds of the last refresh forced by an unknown `kid`.
    last_forced: AtomicU64,
}

impl JwksCache {
    pub(crate) fn new(
        client: StytchClient,
        clock: SharedClock,
        settings: JwksSettings,
        metrics: Arc<Metrics>,
        on_retired: OnRetired,
    ) -> Arc<Self> {
        let on_replace: OnReplace<KeySet> = Box::new(move |old: &KeySet, new: &KeySet| {
            let retired = old.retired_in(new);
            if !retired.is_empty() {
                tracing::info!(
                    retired = ?retired,
                    "Stytch retired signing keys: JWTs they signed are refused from now on"
                );
                on_retired(&retired);
            }
        });
        let keys = Refresher::new(clock.clone(), client.call_deadline()).on_replace(on_replace);
        Arc::new(Self {
            client,
            settings,
            metrics,
            keys: Arc::new(keys),
            clock,
            last_forced: AtomicU64::new(0),
        })
    }

    /// Whether the loaded key set holds `kid` (a key retired from Stytch's JWKS is no
    /// longer held once the set without it is loaded).
    pub(crate) fn holds(&self, kid: &str) -> bool {
        self.keys
            .with_current(|keys| keys.is_some_and(|keys| keys.value.get(kid).is_some()))
    }

    /// The key set that holds `kid`, fetching or refreshing as the rules allow.
    pub(crate) async fn key_set_for(self: &Arc<Self>, kid: &str) -> Result<Arc<Keys>, KeyError> {
        let seen = self.keys.current();
        let usable = seen.clone().filter(|keys| self.still_serving(keys));
        let Some(keys) = usable else {
            // Nothing (usable) loaded: every request needs the keys, so wait for them,
            // but do not retry a failed fetch before the cooldown has passed.
            if self.failed_recently() && !self.keys.in_flight() {
                // A fetch may have succeeded since `seen` was loaded.
                return match self.keys.current() {
                    Some(now) if self.still_serving(&now) => holding(Ok(now), kid),
                    _ => Err(KeyError::Unavailable),
                };
            }
            return holding(self.fetch(seen, Trigger::Due).await, kid);
        };
        if keys.value.get(kid).is_some() {
            return Ok(keys);
        }
        // Unknown kid (a key rotation, or a forged token): refresh at most once per
        // cooldown; concurrent requests join the refresh in progress. The cooldown is
        // read before the flight table: the refresh that claimed it registered its
        // flight first (see `fetch`), so a request that sees the claim either joins
        // that refresh or finds its keys already stored.
        if self.forced_refresh_cooling_down() && !self.keys.in_flight() {
            return match self.keys.current() {
                Some(now) if now.value.get(kid).is_some() => Ok(now),
                // The last attempt failed: whether Stytch publishes this kid is unknown.
                _ if self.failed_recently() => Err(KeyError::Unavailable),
                _ => Err(KeyError::UnknownKid),
            };
        }
        match self.fetch(seen, Trigger::UnknownKid).await {
            // The fetch joined (or found) a scheduled refresh, which did not claim
            // this cooldown's forced refresh and may have been answered before the
            // key was published: ask once more, as the forced refresh.
            Ok(keys) if keys.value.get(kid).is_none() && !self.forced_refresh_cooling_down() => {
                holding(self.fetch(Some(keys), Trigger::UnknownKid).await, kid)
            }
            fetched => holding(fetched, kid),
        }
    }

    /// The loaded key set, when it holds `kid` and may still be served, without
    /// waiting (starts a background refresh when it is due).
    pub(crate) fn serving_set_with(self: &Arc<Self>, kid: &str) -> Option<Arc<Keys>> {
        let keys = self.keys.current()?;
        (keys.value.get(kid).is_some() && self.still_serving(&keys)).then_some(keys)
    }

    fn still_serving(self: &Arc<Self>, keys: &Arc<Keys>) -> bool {
        // Unknown after the clock stepped back: due, and refreshed in the background,
        // but still served (a key's age decides no permission; the keys stay served
        // until the clock is back past their fetch, then for the usual time).
        let age = self.keys.age(keys);
        if age.is_none_or(|age| age > self.settings.refresh_interval) {
            self.refresh_in_background(Some(Arc::clone(keys)));
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
        let fetched = match self.fetch(self.keys.current(), Trigger::WarmUp).await {
            Err(Failed::NotFetched) => self.fetch(self.keys.current(), Trigger::WarmUp).await,
            fetched => fetched,
        };
        match fetched {
            Ok(_) => Ok(()),
            Err(Failed::Error(error)) => Err(error.duplicate()),
            Err(Failed::NotFetched) => Err(ClientError::transport(
                "the JWKS fetch was not made (the runtime is shutting down?)",
            )),
        }
    }

    /// When a client refused for missing keys should try again: the failed-fetch cooldown.
    pub(crate) fn retry_after(&self) -> Duration {
        self.settings.cooldown
    }

    fn failed_recently(&self) -> bool {
        self.keys.failed_within(self.settings.cooldown)
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

    fn refresh_in_background(self: &Arc<Self>, seen: Option<Arc<Keys>>) {
        if self.failed_recently() {
            return;
        }
        let (gate, fetch) = self.fetching(Trigger::Due);
        self.keys.spawn_fetch(seen, gate, fetch);
    }

    /// Fetches, unless the keys changed since the caller saw `seen` (then the newer set
    /// is the answer): a caller that looked just before another fetch completed must
    /// not start a second one. Joins the fetch in progress.
    ///
    /// For an unknown `kid`, the fetch also needs this cooldown's forced refresh,
    /// claimed inside the shared fetch, which is registered before its work can run: a
    /// request that sees the claim finds the flight (or, once it is over, its keys).
    /// When another unknown kid's refresh ran within the cooldown, the answer is the
    /// keys there are.
    async fn fetch(
        self: &Arc<Self>,
        seen: Option<Arc<Keys>>,
        trigger: Trigger,
    ) -> Fetched<KeySet, ClientError> {
        let (gate, fetch) = self.fetching(trigger);
        match self.keys.fetch(seen, gate, fetch).await {
            Err(Failed::NotFetched) if trigger == Trigger::UnknownKid => {
                self.keys.current().ok_or(Failed::NotFetched)
            }
            fetched => fetched,
        }
    }

    /// The gate (whether `trigger` may fetch, asked inside the shared fetch) and the
    /// fetch itself.
    fn fetching(
        self: &Arc<Self>,
        trigger: Trigger,
    ) -> (
        impl FnOnce() -> bool + Clone + Send + 'static,
        impl FnOnce() -> KeysFuture + Clone + Send + 'static,
    ) {
        let gated = Arc::clone(self);
        let gate = move || match trigger {
            Trigger::WarmUp => true,
            // Another fetch failed since this one was decided on.
            Trigger::Due => !gated.failed_recently(),
            Trigger::UnknownKid => gated.claim_forced_refresh(),
        };
        let this = Arc::clone(self);
        let fetch = move || -> KeysFuture { Box::pin(async move { this.fetch_now().await }) };
        (gate, fetch)
    }

    async fn fetch_now(&self) -> Result<KeySet, ClientError> {
        self.metrics.jwks_fetch();
        let fetched = match self.client.jwks().await {
            Ok(jwks) => {
                let (set, skipped) = KeySet::from_jwks(&jwks);
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
                    Err(ClientError::unexpected(
                        http::StatusCode::OK,
                        "the JWKS has no usable RS256 signing key",
                    ))
                } else {
                    tracing::debug!(keys = set.len(), "JWKS refreshed");
                    Ok(set)
                }
            }
            Err(error) => {
                tracing::warn!(%error, "JWKS fetch failed");
                Err(error)
            }
        };
        if fetched.is_err() {
            self.metrics.jwks_fetch_failure();
        }
        fetched
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
        let jwks = &auth.core.local.jwks;
        jwks.refresh().await.expect("the keys");
        let seen = jwks.keys.current();
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
        let jwks = &auth.core.local.jwks;
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
            jwks.keys.joined(),
            1,
            "the warm-up joined the refresh first"
        );
        assert_eq!(
            emu.requests(Endpoint::Jwks),
            asked + 1,
            "one fetch: the warm-up's"
        );
        assert!(
            matches!(due.await, Err(Failed::NotFetched)),
            "the refresh did not ask"
        );
    }
}
