//! Injectable time source.
//!
//! Every expiry, TTL and age decision in this crate reads the time from a
//! [`Clock`], so tests can move time forward without sleeping.
//!
//! A clock gives two readings. The wall clock ([`Clock::now`]) is what tokens, sessions
//! and Stytch speak in; it can step (an NTP correction, a VM resumed, an operator's
//! fix). The monotonic reading ([`Clock::monotonic`]) only measures real time passing:
//! how long something may be trusted or remembered *from now on* is counted with it,
//! so that no step of the wall clock stretches a cached JWT's trust or shortens a
//! logout.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A source of the current wall-clock time.
///
/// The default is [`SystemClock`]. Tests inject a controllable clock (see
/// `axum_stytch::testing::MockClock` with the `test-util` feature) so that
/// token expiry and cache TTLs are exercised without sleeping.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use axum_stytch::Clock;
///
/// /// A clock that runs ten seconds behind the system clock.
/// struct Behind;
///
/// impl Clock for Behind {
///     fn now(&self) -> SystemTime {
///         SystemTime::now() - Duration::from_secs(10)
///     }
/// }
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;

    /// A monotonic reading: it only moves forward, with real time, whatever the wall
    /// clock does. Default: [`Instant::now`]. A test clock moves it when time is
    /// meant to pass, and not when the wall clock steps.
    fn monotonic(&self) -> Instant {
        Instant::now()
    }
}

/// The operating system's clock ([`SystemTime::now`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }

    fn monotonic(&self) -> Instant {
        (**self).monotonic()
    }
}

/// Both readings of a clock, taken together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reading {
    pub(crate) wall: SystemTime,
    pub(crate) mono: Instant,
}

/// Shared, type-erased clock handle used inside the crate.
#[derive(Clone)]
pub(crate) struct SharedClock(pub(crate) Arc<dyn Clock>);

impl SharedClock {
    pub(crate) fn system() -> Self {
        Self(Arc::new(SystemClock))
    }

    pub(crate) fn now(&self) -> SystemTime {
        self.0.now()
    }

    /// The monotonic reading ([`Clock::monotonic`]).
    pub(crate) fn monotonic(&self) -> Instant {
        self.0.monotonic()
    }

    /// Both readings.
    pub(crate) fn read(&self) -> Reading {
        Reading {
            wall: self.now(),
            mono: self.monotonic(),
        }
    }

    /// Seconds since the Unix epoch, saturating at 0 for times before it.
    pub(crate) fn unix_seconds(&self) -> u64 {
        unix_seconds(self.now())
    }

    /// Milliseconds since the Unix epoch, saturating at 0 for times before it.
    pub(crate) fn unix_millis(&self) -> u64 {
        unix_millis(self.now())
    }
}

impl fmt::Debug for SharedClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// Milliseconds since the Unix epoch, saturating at 0 for times before it.
pub(crate) fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Seconds since the Unix epoch, saturating at 0 for times before it.
pub(crate) fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// How far a clock reading may trail a time this process recorded before the clock
/// counts as stepped back: a request that read the clock just before another task
/// stamped a fetch trails it by microseconds.
pub(crate) const STEP_BACK: Duration = Duration::from_secs(60);

/// The age at `now` of a value stamped `then`, for refresh decisions: zero when `then`
/// is at most a minute ahead, `None` when further ahead (the clock stepped back: the
/// age is unknown, and the value counts as due rather than fresh for that long).
pub(crate) fn age(then: SystemTime, now: SystemTime) -> Option<Duration> {
    match now.duration_since(then) {
        Ok(age) => Some(age),
        Err(ahead) if ahead.duration() <= STEP_BACK => Some(Duration::ZERO),
        Err(_) => None,
    }
}

/// Whether `since` (unix seconds; 0: never) is less than `window` before `now`, for
/// backoffs and cooldowns. A `since` more than a minute ahead of `now` (the clock
/// stepped back) ends the window instead of stretching it.
pub(crate) fn within(since: u64, window: Duration, now: u64) -> bool {
    since != 0
        && now < since.saturating_add(window.as_secs())
        && now.saturating_add(STEP_BACK.as_secs()) >= since
}

#[cfg(any(test, feature = "test-util"))]
pub use mock::MockClock;

#[cfg(any(test, feature = "test-util"))]
mod mock {
    use super::Clock;
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::{Duration, Instant, SystemTime};

    /// The most [`MockClock::advance`] moves the monotonic reading in all (a
    /// millennium): an `Instant` cannot hold an unbounded offset.
    const MAX_ELAPSED: Duration = Duration::from_secs(1_000 * 366 * 24 * 3600);

    /// A clock that moves only when told to, or also with real time
    /// ([`real_time`](Self::real_time)). Cheap to clone; clones share time.
    ///
    /// Available with the `test-util` feature. The [`StytchEmulator`] owns
    /// one; hand the same clock to [`StytchAuthBuilder::clock`] so that the
    /// emulator and the middleware agree on the time.
    ///
    /// [`advance`](Self::advance) is time passing: both readings move.
    /// [`set`](Self::set) is a step of the wall clock (an NTP correction, a VM
    /// resumed): the wall reading jumps, the monotonic one stays, as on a real
    /// machine.
    ///
    /// [`StytchEmulator`]: crate::testing::StytchEmulator
    /// [`StytchAuthBuilder::clock`]: crate::StytchAuthBuilder::clock
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use axum_stytch::{Clock, testing::MockClock};
    ///
    /// let clock = MockClock::new();
    /// let (before, started) = (clock.now(), clock.monotonic());
    /// clock.advance(Duration::from_secs(301));
    /// assert_eq!(clock.now().duration_since(before).unwrap().as_secs(), 301);
    /// // The wall clock steps back an hour: no time passed.
    /// clock.set(clock.now() - Duration::from_secs(3600));
    /// assert_eq!(clock.monotonic() - started, Duration::from_secs(301));
    /// ```
    #[derive(Debug, Clone)]
    pub struct MockClock {
        state: Arc<Mutex<State>>,
        /// The monotonic reading at creation.
        origin: Instant,
    }

    #[derive(Debug)]
    struct State {
        /// The wall reading as of `since` (or for good, when not following).
        wall: SystemTime,
        /// Time passed since creation as of `since` ([`MockClock::advance`]).
        elapsed: Duration,
        /// Following real time ([`MockClock::real_time`]): the real instant from
        /// which real time is added to both readings.
        since: Option<Instant>,
    }

    impl State {
        /// Real time passed since `since` (none when not following).
        fn passed(&self) -> Duration {
            self.since.map_or(Duration::ZERO, |since| since.elapsed())
        }

        /// Folds the real time passed into the readings, so a jump applies to the
        /// clock as it reads now.
        fn settle(&mut self) {
            if let Some(since) = self.since {
                let now = Instant::now();
                let passed = now.saturating_duration_since(since);
                self.wall = crate::timestamp::saturating_add(self.wall, passed);
                self.elapsed = self.elapsed.saturating_add(passed).min(MAX_ELAPSED);
                self.since = Some(now);
            }
        }
    }

    impl MockClock {
        /// A clock frozen at the current system time, truncated to whole seconds.
        pub fn new() -> Self {
            let secs = super::unix_seconds(SystemTime::now());
            Self::at(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        }

        /// A clock frozen at `time`.
        pub fn at(time: SystemTime) -> Self {
            Self::starting(time, None)
        }

        /// A clock that follows real time from the current system time (to the
        /// nanosecond): both readings move as real time passes, read from the system's
        /// monotonic clock at each reading, so it never trails it.
        /// [`advance`](Self::advance) and [`set`](Self::set) still jump, and time goes
        /// on from where they put it. For clients that read the system clock (another
        /// language's SDK) next to a test that jumps.
        ///
        /// ```
        /// use std::time::{Duration, SystemTime};
        /// use axum_stytch::{Clock, testing::MockClock};
        ///
        /// let clock = MockClock::real_time();
        /// clock.advance(Duration::from_secs(3600));
        /// let ahead = clock.now().duration_since(SystemTime::now()).unwrap();
        /// assert!(ahead > Duration::from_secs(3599) && ahead <= Duration::from_secs(3600));
        /// ```
        pub fn real_time() -> Self {
            Self::starting(SystemTime::now(), Some(Instant::now()))
        }

        /// Makes this clock (and its clones) follow real time from its current
        /// reading on.
        #[cfg(feature = "test-util")]
        pub(crate) fn follow_real_time(&self) {
            let mut state = self.lock();
            state.settle();
            state.since.get_or_insert_with(Instant::now);
        }

        fn starting(wall: SystemTime, since: Option<Instant>) -> Self {
            let origin = Instant::now();
            Self {
                state: Arc::new(Mutex::new(State {
                    wall,
                    elapsed: Duration::ZERO,
                    since: since.map(|_| origin),
                })),
                origin,
            }
        }

        /// Lets `by` pass: both readings move forward (the wall clock at most to the
        /// end of year 9999).
        pub fn advance(&self, by: Duration) {
            let mut state = self.lock();
            state.settle();
            state.wall = crate::timestamp::saturating_add(state.wall, by);
            state.elapsed = state.elapsed.saturating_add(by).min(MAX_ELAPSED);
        }

        /// Steps the wall clock to `time` (which may be in the past): no time passes.
        pub fn set(&self, time: SystemTime) {
            let mut state = self.lock();
            state.settle();
            state.wall = time;
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, State> {
            self.state.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    impl Default for MockClock {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Clock for MockClock {
        fn now(&self) -> SystemTime {
            let state = self.lock();
            crate::timestamp::saturating_add(state.wall, state.passed())
        }

        fn monotonic(&self) -> Instant {
            let state = self.lock();
            self.origin
                + state
                    .elapsed
                    .saturating_add(state.passed())
                    .min(MAX_ELAPSED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_is_unknown_only_when_the_clock_stepped_back_past_a_minute() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let secs = Duration::from_secs;
        assert_eq!(age(t, t + secs(30)), Some(secs(30)));
        assert_eq!(age(t, t), Some(Duration::ZERO));
        // Read just before another task stamped the value.
        assert_eq!(age(t, t - secs(60)), Some(Duration::ZERO));
        assert_eq!(age(t, t - secs(61)), None);
    }

    /// A real-time clock never trails the system clock, and keeps the jumps a test
    /// makes, moving on from where they put it.
    #[test]
    fn a_real_time_mock_clock_moves_with_real_time_and_keeps_jumps() {
        let began = Instant::now();
        let clock = MockClock::real_time();
        let (wall, mono) = (clock.now(), clock.monotonic());
        // Real time passes without sleeping: spin until the clock has moved.
        while clock.now() == wall {
            std::hint::spin_loop();
        }
        let moved = clock.now().duration_since(wall).expect("forward");
        assert!(moved <= began.elapsed(), "{moved:?}");
        assert!(clock.monotonic() > mono, "both readings move");

        clock.advance(Duration::from_secs(3600));
        let ahead = clock
            .now()
            .duration_since(SystemTime::now())
            .expect("an hour ahead");
        assert!(ahead > Duration::from_secs(3599) && ahead <= Duration::from_secs(3600));

        // A step of the wall clock is kept too (the monotonic reading does not jump
        // back), and time goes on from there.
        let stepped = SystemTime::UNIX_EPOCH + Duration::from_secs(5);
        let before_step = clock.monotonic();
        clock.set(stepped);
        assert!(clock.monotonic() >= before_step);
        let after = clock.now().duration_since(stepped).expect("from the step");
        assert!(after <= began.elapsed());
    }

    #[test]
    fn a_window_ends_when_the_clock_stepped_back_past_a_minute() {
        let window = Duration::from_secs(5);
        assert!(!within(0, window, 1_000), "never");
        assert!(within(1_000, window, 1_000));
        assert!(within(1_000, window, 1_004));
        assert!(!within(1_000, window, 1_005));
        assert!(within(1_000, window, 940));
        assert!(!within(1_000, window, 939), "stepped back");
    }
}
