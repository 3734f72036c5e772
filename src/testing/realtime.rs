//! Following real time ([`EmulatorOptions::follow_real_time`]): the emulator's
//! [`MockClock`] advanced by the real time that passes, so that clients reading the
//! system clock (other languages' SDKs) agree with it.
//!
//! [`MockClock`] lives outside this module and only moves when told to, so the
//! emulator tells it: before each request and each call on its handle
//! ([`RealTime::sync`]), and from a background task every [`TICK`] for the other
//! readers of the clock (a layer sharing it). Each sync is a
//! [`MockClock::advance`] by the real time passed since the last one, so the jumps
//! a test makes ([`advance`](MockClock::advance), [`set`](MockClock::set)) are kept
//! as an offset from real time.
//!
//! [`EmulatorOptions::follow_real_time`]: crate::testing::EmulatorOptions::follow_real_time

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::clock::MockClock;

/// How often the background task advances the clock: between two ticks a reading
/// taken outside the emulator trails real time by at most this much.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// A clock kept in step with real time.
#[derive(Debug)]
pub(crate) struct RealTime {
    clock: MockClock,
    /// When the clock was last advanced (the real, monotonic time).
    synced: Mutex<Instant>,
}

impl RealTime {
    /// Starts following real time from now: the clock moves from its current reading.
    pub(crate) fn new(clock: MockClock) -> Self {
        Self {
            clock,
            synced: Mutex::new(Instant::now()),
        }
    }

    /// Advances the clock by the real time passed since the last sync.
    pub(crate) fn sync(&self) {
        // Held while advancing: two syncs never count the same time twice.
        let mut synced = self.synced.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let passed = now.saturating_duration_since(*synced);
        *synced = now;
        if !passed.is_zero() {
            self.clock.advance(passed);
        }
    }

    /// Syncs every [`TICK`] on a spawned task until `this` is dropped.
    pub(crate) fn spawn_ticker(this: &Arc<RealTime>) {
        let weak: Weak<RealTime> = Arc::downgrade(this);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(TICK);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(real_time) = weak.upgrade() else {
                    break;
                };
                real_time.sync();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock as _;
    use std::time::SystemTime;

    #[test]
    fn a_sync_advances_both_readings_by_the_real_time_passed() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let clock = MockClock::at(start);
        let mono = clock.monotonic();
        let real_time = RealTime::new(clock.clone());
        let began = Instant::now();
        // Real time passes without sleeping: spin until the monotonic clock has moved.
        while Instant::now() == began {
            std::hint::spin_loop();
        }
        real_time.sync();
        let upper = began.elapsed();
        let moved = clock.now().duration_since(start).unwrap();
        assert!(!moved.is_zero() && moved <= upper, "{moved:?} > {upper:?}");
        assert_eq!(clock.monotonic() - mono, moved);
    }

    #[test]
    fn jumps_made_by_a_test_are_kept() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let clock = MockClock::at(start);
        let real_time = RealTime::new(clock.clone());
        let began = Instant::now();
        clock.advance(Duration::from_secs(3600));
        real_time.sync();
        let upper = began.elapsed();
        let moved = clock.now().duration_since(start).unwrap() - Duration::from_secs(3600);
        assert!(moved <= upper, "{moved:?} > {upper:?}");

        // A step of the wall clock is kept too, and time goes on from there.
        let stepped = SystemTime::UNIX_EPOCH + Duration::from_secs(5);
        clock.set(stepped);
        real_time.sync();
        let after = clock.now().duration_since(stepped).unwrap();
        assert!(after <= began.elapsed());
    }
}
