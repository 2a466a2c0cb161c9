//! Both clocks for the price of one: wall-clock time derived from the monotonic clock.
//!
//! A span needs its start on the wall clock (exporters send timestamps) and a monotonic reading
//! (its duration must not jump with the wall clock). Reading both system clocks for every span
//! is two clock reads where one will do: [`now`] reads the monotonic clock and derives the wall
//! time from a per-thread anchor pair, taken again whenever it is more than [`REANCHOR`] old. A
//! derived time is off from the system's wall clock by at most the clock's slew over that
//! interval (NTP slews at most 0.5 ms a second, so microseconds), and a step of the wall clock
//! shows within [`REANCHOR`].
//!
//! ```
//! use std::time::{Duration, SystemTime};
//!
//! let (wall, _monotonic) = trace_core::clock::now();
//! let system = SystemTime::now();
//! let apart = system.duration_since(wall).unwrap_or_else(|e| e.duration());
//! assert!(apart < Duration::from_secs(1));
//! ```

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime};

/// How old a thread's anchor may be before the wall clock is read again.
pub const REANCHOR: Duration = Duration::from_millis(100);

thread_local! {
    /// This thread's last pair of readings of both clocks, taken together.
    static ANCHOR: Cell<Option<(Instant, SystemTime)>> = const { Cell::new(None) };
}

/// Now on the wall clock and on the monotonic clock, for one monotonic read (and a wall-clock
/// read at most every [`REANCHOR`] on each thread).
pub fn now() -> (SystemTime, Instant) {
    let monotonic = Instant::now();
    (wall_time_at(monotonic), monotonic)
}

/// The wall-clock time of a monotonic reading taken on this thread a moment ago (or about to be
/// used as a span's start), from the thread's anchor.
pub fn wall_time_at(monotonic: Instant) -> SystemTime {
    ANCHOR.with(|anchor| {
        if let Some((at, wall)) = anchor.get() {
            let derived = match monotonic.checked_duration_since(at) {
                Some(after) if after < REANCHOR => wall.checked_add(after),
                Some(_) => None,
                None => at
                    .checked_duration_since(monotonic)
                    .filter(|before| *before < REANCHOR)
                    .and_then(|before| wall.checked_sub(before)),
            };
            if let Some(derived) = derived {
                return derived;
            }
        }
        let wall = SystemTime::now();
        anchor.set(Some((monotonic, wall)));
        wall
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_times_follow_the_monotonic_clock_from_the_anchor() {
        // A reading far from any anchor this thread has: it takes a new one.
        let base = Instant::now() + Duration::from_secs(3600);
        let wall = wall_time_at(base);
        assert_eq!(
            wall_time_at(base + Duration::from_millis(40)),
            wall + Duration::from_millis(40)
        );
        assert_eq!(
            wall_time_at(base - Duration::from_millis(30)),
            wall - Duration::from_millis(30)
        );
    }

    #[test]
    fn an_old_anchor_is_taken_again() {
        let (_, monotonic) = now();
        let much_later = monotonic + REANCHOR * 3;
        let before = SystemTime::now();
        let derived = wall_time_at(much_later);
        assert!(
            derived >= before,
            "a fresh wall-clock reading, not the old anchor plus 300 ms"
        );
        // The new anchor serves the next reading.
        assert_eq!(
            wall_time_at(much_later + Duration::from_millis(1)),
            derived + Duration::from_millis(1)
        );
    }

    #[test]
    fn the_derived_time_stays_close_to_the_system_clock() {
        for _ in 0..1000 {
            let (wall, _) = now();
            let system = SystemTime::now();
            let apart = system.duration_since(wall).unwrap_or_else(|e| e.duration());
            // A generous guard for a loaded machine: the point is "same clock", not speed.
            assert!(apart < Duration::from_millis(500), "{apart:?}");
        }
    }
}
