//! Time as epoch milliseconds, read through a clock that tests can move forward,
//! so expiry is tested without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};

#[derive(Debug, Clone)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
    /// The wall time the clock stopped at ([`Clock::freeze`]); `NOT_FROZEN` while it runs.
    frozen_at_ms: Arc<AtomicI64>,
}

const NOT_FROZEN: i64 = i64::MIN;

impl Default for Clock {
    fn default() -> Self {
        Clock { offset_ms: Arc::default(), frozen_at_ms: Arc::new(AtomicI64::new(NOT_FROZEN)) }
    }
}

impl Clock {
    pub fn now_ms(&self) -> i64 {
        let wall = match self.frozen_at_ms.load(Ordering::Relaxed) {
            NOT_FROZEN => Utc::now().timestamp_millis(),
            frozen => frozen,
        };
        wall + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Stops this clock (and every copy of it) where it is: from now on only
    /// [`Clock::advance`] moves it; for tests that need exact times.
    pub fn freeze(&self) {
        let now = Utc::now().timestamp_millis();
        let _ = self.frozen_at_ms.compare_exchange(NOT_FROZEN, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Moves this clock (and every copy of it) forward; for tests.
    pub fn advance(&self, seconds: i64) {
        self.advance_ms(seconds * 1000);
    }

    /// Moves this clock (and every copy of it) forward by `ms` milliseconds; for tests.
    pub fn advance_ms(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

/// `2026-08-23T10:11:12.345Z`, the format Better Auth sends and stores in SQLite.
pub fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn parse_iso(s: &str) -> Option<i64> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_millis());
    }
    // Tolerate `YYYY-MM-DD HH:MM:SS[.fff]` as written by SQLite's own date functions.
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").ok().map(|n| n.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trip() {
        assert_eq!(iso(1_787_479_872_345), "2026-08-23T10:11:12.345Z");
        assert_eq!(parse_iso("2026-08-23T10:11:12.345Z"), Some(1_787_479_872_345));
        assert_eq!(parse_iso("2026-08-23 10:11:12.345"), Some(1_787_479_872_345));
        assert_eq!(parse_iso("yesterday"), None);
    }

    #[test]
    fn a_frozen_clock_moves_only_when_advanced() {
        let clock = Clock::default();
        clock.freeze();
        let at = clock.now_ms();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(clock.now_ms(), at);
        clock.clone().advance_ms(250);
        assert_eq!(clock.now_ms(), at + 250);
        clock.freeze(); // already frozen: stays where it is
        assert_eq!(clock.now_ms(), at + 250);
    }

    #[test]
    fn clocks_advance_together() {
        let c = Clock::default();
        let copy = c.clone();
        let before = copy.now_ms();
        c.advance(3600);
        assert!(copy.now_ms() - before >= 3_600_000);
    }
}
