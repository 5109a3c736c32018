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
/// Written by hand for years 0 to 9999 (every answer carries five of these dates);
/// chrono writes the rest.
pub fn iso(ms: i64) -> String {
    if !(-62_167_219_200_000..253_402_300_800_000).contains(&ms) {
        return DateTime::<Utc>::from_timestamp_millis(ms)
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::Millis, true);
    }
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    let (h, m, s, milli) = (in_day / 3_600_000, in_day / 60_000 % 60, in_day / 1000 % 60, in_day % 1000);
    let mut out = [0u8; 24];
    let mut put = |at: usize, value: i64, width: usize| {
        let mut v = value;
        for i in (0..width).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, h, 2);
    put(14, m, 2);
    put(17, s, 2);
    put(20, milli, 3);
    for (at, c) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'.'), (23, b'Z')] {
        out[at] = c;
    }
    String::from_utf8(out.to_vec()).expect("ASCII digits")
}

/// Year, month, day of a day count from 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Days from 1970-01-01 of a date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` exactly, as [`iso`] writes it; `None` for anything else.
fn parse_own_iso(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 24 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if b[19] != b'.' || b[23] != b'Z' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        b[from..to].iter().try_fold(0i64, |n, &c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, m, sec, milli) = (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?);
    let month_days = match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if day < 1 || day > month_days || h > 23 || m > 59 || sec > 59 {
        return None;
    }
    Some(((days_from_civil(year, month, day) * 24 + h) * 60 + m) * 60_000 + sec * 1000 + milli)
}

pub fn parse_iso(s: &str) -> Option<i64> {
    if let Some(ms) = parse_own_iso(s) {
        return Some(ms);
    }
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
    fn the_hand_written_dates_are_chronos() {
        let chrono_iso =
            |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms).unwrap().to_rfc3339_opts(SecondsFormat::Millis, true);
        // The last millisecond of every day from 1970 to 2517 (leap days and centuries
        // included), and points spread evenly over years 0 to 9999.
        let days = (1..200_000).map(|d| d * 86_400_000 - 1);
        let spread = (0..100_000).map(|i| -62_167_219_200_000 + i * 3_155_695_200 + i % 1000);
        for ms in days.chain(spread).chain([0, 1_787_479_872_345, 253_402_300_799_999]) {
            let text = iso(ms);
            assert_eq!(text, chrono_iso(ms), "{ms}");
            assert_eq!(parse_iso(&text), Some(ms), "{text}");
        }
        assert_eq!(iso(253_402_300_800_000), "+10000-01-01T00:00:00.000Z");
        for bad in ["2026-02-29T00:00:00.000Z", "2026-13-01T00:00:00.000Z", "2026-01-01T24:00:00.000Z"] {
            assert_eq!(parse_own_iso(bad), None, "{bad}");
            assert_eq!(parse_iso(bad), None, "{bad}");
        }
        assert_eq!(parse_iso("2024-02-29T12:00:00.000Z"), parse_iso("2024-02-29T12:00:00Z"));
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
