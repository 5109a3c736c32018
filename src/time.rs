//! Time as epoch milliseconds, read through a clock that tests can move forward,
//! so expiry is tested without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};

#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn now_ms(&self) -> i64 {
        Utc::now().timestamp_millis() + self.offset_ms.load(Ordering::Relaxed)
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
    fn clocks_advance_together() {
        let c = Clock::default();
        let copy = c.clone();
        let before = copy.now_ms();
        c.advance(3600);
        assert!(copy.now_ms() - before >= 3_600_000);
    }
}
