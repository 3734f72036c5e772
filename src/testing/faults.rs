//! Fault injection and request counting: what each endpoint's calls meet when
//! they arrive, and how many arrived.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// The emulated endpoints, for [`StytchEmulator::inject_fault`] and
/// [`StytchEmulator::requests`].
///
/// [`StytchEmulator::inject_fault`]: crate::testing::StytchEmulator::inject_fault
/// [`StytchEmulator::requests`]: crate::testing::StytchEmulator::requests
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `POST /v1/b2b/sessions/authenticate`.
    Authenticate,
    /// `POST /v1/b2b/sessions/revoke`.
    Revoke,
    /// `GET /v1/b2b/sessions/jwks/{project_id}`.
    Jwks,
    /// `GET /v1/b2b/rbac/policy`.
    Policy,
    /// `GET /v1/b2b/rbac/organizations/{organization_id}`.
    OrganizationPolicy,
    /// `POST /v1/public/{project_id}/oauth2/token` (M2M access tokens).
    M2mToken,
    /// `POST /v1/oauth2/introspect` and `POST /v1/public/{project_id}/oauth2/introspect`.
    Introspect,
    /// `GET /.well-known/jwks.json` and `GET /v1/public/{project_id}/.well-known/jwks.json`
    /// (the session JWKS's keys, on the project-domain paths).
    PublicJwks,
    /// `GET /.well-known/openid-configuration`, `GET /.well-known/oauth-authorization-server`
    /// and `GET /v1/public/{project_id}/.well-known/openid-configuration`.
    Discovery,
}

impl Endpoint {
    /// Whether the endpoint answers errors with OAuth 2.0 field names
    /// (`error`, `error_description`, `error_uri`).
    pub(crate) fn oauth_errors(self) -> bool {
        matches!(self, Endpoint::M2mToken | Endpoint::Introspect)
    }
}

/// A misbehaviour to inject into an endpoint.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Fault {
    /// Every call waits, unanswered, until [`StytchEmulator::release`] for this
    /// endpoint, [`StytchEmulator::clear_faults`], or the emulator's last handle is
    /// dropped; it is then answered as it would have been. Keeps calls in flight for exactly as long as a test needs,
    /// where a [`Fault::Delay`] would depend on the machine's speed.
    /// [`StytchEmulator::requests`] counts held calls, so a test can wait for them
    /// to arrive.
    ///
    /// [`StytchEmulator::release`]: crate::testing::StytchEmulator::release
    /// [`StytchEmulator::clear_faults`]: crate::testing::StytchEmulator::clear_faults
    /// [`StytchEmulator::requests`]: crate::testing::StytchEmulator::requests
    Hold,
    /// Every call sleeps this long (real time, `tokio::time::sleep`) before
    /// answering, until [`StytchEmulator::clear_faults`].
    ///
    /// [`StytchEmulator::clear_faults`]: crate::testing::StytchEmulator::clear_faults
    Delay(Duration),
    /// The next `times` calls answer `status` with a five-field Stytch error
    /// body (`429` also sends `Retry-After: 1`). A status outside
    /// 100..=999 is answered as 500. On [`Endpoint::M2mToken`] and
    /// [`Endpoint::Introspect`] the body has OAuth's field names (`error`,
    /// `error_description`, `error_uri`), as those endpoints' errors do.
    Status {
        /// The HTTP status.
        status: u16,
        /// How many calls this answers.
        times: u32,
    },
    /// The next `times` calls answer 429 `too_many_requests` with this
    /// `Retry-After` (whole seconds); the body as for [`Fault::Status`].
    RateLimited {
        /// The `Retry-After` delay sent.
        retry_after: Duration,
        /// How many calls this answers.
        times: u32,
    },
    /// The next `times` calls answer 200 with a body that is not valid JSON.
    Garbage {
        /// How many calls this answers.
        times: u32,
    },
    /// The next `times` calls answer `status` with `body` verbatim
    /// (`Content-Type: application/json`).
    Body {
        /// The HTTP status.
        status: u16,
        /// The raw response body.
        body: String,
        /// How many calls this answers.
        times: u32,
    },
}

/// The armed faults and the request counters of every endpoint.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    queues: HashMap<Endpoint, FaultQueue>,
    counts: HashMap<Endpoint, u64>,
}

impl Faults {
    pub(crate) fn inject(&mut self, endpoint: Endpoint, fault: Fault) {
        self.queues.entry(endpoint).or_default().push(fault);
    }

    /// Disarms every fault, releasing held calls.
    pub(crate) fn clear(&mut self) {
        self.queues.clear();
    }

    /// Releases the calls held on `endpoint` and holds no further call.
    pub(crate) fn release(&mut self, endpoint: Endpoint) {
        if let Some(queue) = self.queues.get_mut(&endpoint) {
            queue.hold = None;
        }
    }

    pub(crate) fn requests(&self, endpoint: Endpoint) -> u64 {
        self.counts.get(&endpoint).copied().unwrap_or(0)
    }

    pub(crate) fn reset_request_counts(&mut self) {
        self.counts.clear();
    }

    /// Counts a request and returns the faults that apply to it.
    pub(crate) fn arrive(&mut self, endpoint: Endpoint) -> Arrival {
        *self.counts.entry(endpoint).or_insert(0) += 1;
        self.queues
            .get_mut(&endpoint)
            .map(FaultQueue::take)
            .unwrap_or_default()
    }
}

/// Faults armed for one endpoint.
#[derive(Debug, Default)]
struct FaultQueue {
    /// While armed, calls wait until it is dropped ([`Fault::Hold`]).
    hold: Option<tokio::sync::watch::Sender<()>>,
    delay: Option<Duration>,
    queued: VecDeque<Fault>,
}

/// What a call meets when it arrives: in this order, a hold, a delay, and the one-shot
/// fault (if any) that answers it.
#[derive(Debug, Default)]
pub(crate) struct Arrival {
    pub(crate) hold: Option<Hold>,
    pub(crate) delay: Option<Duration>,
    pub(crate) fault: Option<Fault>,
}

/// A call held by [`Fault::Hold`].
#[derive(Debug)]
pub(crate) struct Hold(tokio::sync::watch::Receiver<()>);

impl Hold {
    /// Waits until the hold is released (its sender dropped by `release` or
    /// `clear_faults`).
    pub(crate) async fn released(mut self) {
        // Nothing is ever sent: `changed` fails once the sender is gone.
        while self.0.changed().await.is_ok() {}
    }
}

impl FaultQueue {
    fn push(&mut self, fault: Fault) {
        match fault {
            Fault::Hold => {
                self.hold
                    .get_or_insert_with(|| tokio::sync::watch::channel(()).0);
            }
            Fault::Delay(d) => self.delay = Some(d),
            other => self.queued.push_back(other),
        }
    }

    /// What this call meets.
    fn take(&mut self) -> Arrival {
        Arrival {
            hold: self.hold.as_ref().map(|hold| Hold(hold.subscribe())),
            delay: self.delay,
            fault: self.take_once(),
        }
    }

    /// The one-shot fault (if any) that answers this call.
    fn take_once(&mut self) -> Option<Fault> {
        loop {
            let front = self.queued.front_mut()?;
            let Some(times) = remaining(front) else {
                self.queued.pop_front();
                continue;
            };
            if *times == 0 {
                self.queued.pop_front();
                continue;
            }
            *times -= 1;
            let exhausted = *times == 0;
            let once = front.clone();
            if exhausted {
                self.queued.pop_front();
            }
            return Some(once);
        }
    }
}

/// The remaining-uses counter of a one-shot fault.
fn remaining(fault: &mut Fault) -> Option<&mut u32> {
    match fault {
        Fault::Status { times, .. }
        | Fault::RateLimited { times, .. }
        | Fault::Garbage { times }
        | Fault::Body { times, .. } => Some(times),
        Fault::Hold | Fault::Delay(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_consumed_in_order_and_delay_persists() {
        let mut q = FaultQueue::default();
        q.push(Fault::Delay(Duration::from_millis(5)));
        q.push(Fault::Status {
            status: 503,
            times: 2,
        });
        q.push(Fault::Garbage { times: 0 });
        q.push(Fault::Garbage { times: 1 });
        let statuses: Vec<_> = (0..4)
            .map(|_| {
                let arrival = q.take();
                assert!(arrival.hold.is_none());
                match (arrival.delay, arrival.fault) {
                    (Some(_), Some(Fault::Status { status, .. })) => status,
                    (Some(_), Some(Fault::Garbage { .. })) => 200,
                    (Some(_), None) => 0,
                    other => panic!("unexpected {other:?}"),
                }
            })
            .collect();
        assert_eq!(statuses, [503, 503, 200, 0]);
    }

    /// Held calls wait for the release, whether by `release` or `clear_faults`; the
    /// one-shot fault a held call drew stays its answer, and calls after a release
    /// are not held.
    #[test]
    fn held_calls_wait_for_their_release() {
        use std::future::Future as _;
        use std::task::{Context, Poll, Waker};
        let mut cx = Context::from_waker(Waker::noop());
        let mut s = Faults::default();
        s.inject(Endpoint::Jwks, Fault::Hold);
        s.inject(Endpoint::Jwks, Fault::Hold);
        s.inject(Endpoint::Jwks, Fault::Garbage { times: 1 });
        let first = s.arrive(Endpoint::Jwks);
        let second = s.arrive(Endpoint::Jwks);
        assert!(matches!(first.fault, Some(Fault::Garbage { .. })));
        assert!(second.fault.is_none());
        let mut first = std::pin::pin!(first.hold.unwrap().released());
        let mut second = std::pin::pin!(second.hold.unwrap().released());
        assert!(first.as_mut().poll(&mut cx).is_pending());
        // Another endpoint's release lets nothing go.
        s.release(Endpoint::Authenticate);
        assert!(first.as_mut().poll(&mut cx).is_pending());
        s.release(Endpoint::Jwks);
        assert_eq!(first.as_mut().poll(&mut cx), Poll::Ready(()));
        assert_eq!(second.as_mut().poll(&mut cx), Poll::Ready(()));
        assert!(
            s.arrive(Endpoint::Jwks).hold.is_none(),
            "released: not held"
        );

        s.inject(Endpoint::Jwks, Fault::Hold);
        let mut held = std::pin::pin!(s.arrive(Endpoint::Jwks).hold.unwrap().released());
        assert!(held.as_mut().poll(&mut cx).is_pending());
        s.clear();
        assert_eq!(held.as_mut().poll(&mut cx), Poll::Ready(()));
    }
}
