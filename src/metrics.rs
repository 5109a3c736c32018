//! Prometheus metrics (opt-in, `metrics=True`): requests and their latency by route and
//! status, guests by what happened to them, rate-limit refusals and database errors,
//! in the text exposition format. Counting is atomic adds and one short lock per
//! route and request; nothing is counted when metrics are off.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use crate::callbacks::EventKind;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The route label of requests that matched no route.
pub const UNMATCHED: (&str, &str) = ("", "unmatched");

#[derive(Default)]
struct RouteStats {
    statuses: Mutex<Vec<(u16, u64)>>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

const GUEST_EVENTS: [(EventKind, &str); 5] = [
    (EventKind::Created, "created"),
    (EventKind::Linked, "converted"),
    (EventKind::Upgraded, "upgraded"),
    (EventKind::Deleted, "deleted"),
    (EventKind::CleanedUp, "cleaned_up"),
];

#[derive(Default)]
pub struct Metrics {
    routes: RwLock<HashMap<(&'static str, &'static str), RouteStats>>,
    guests: [AtomicU64; GUEST_EVENTS.len()],
    rate_limited: AtomicU64,
    database_unavailable: AtomicU64,
    internal_errors: AtomicU64,
}

impl Metrics {
    /// One answered request of `route` (method, path; [`UNMATCHED`] for none).
    pub fn request(&self, route: (&'static str, &'static str), status: u16, took: Duration) {
        let observe = |s: &RouteStats| {
            {
                let mut statuses = s.statuses.lock().expect("metrics lock");
                match statuses.iter_mut().find(|(code, _)| *code == status) {
                    Some((_, n)) => *n += 1,
                    None => statuses.push((status, 1)),
                }
            }
            let secs = took.as_secs_f64();
            if let Some(i) = BUCKETS.iter().position(|&le| secs <= le) {
                s.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
            s.count.fetch_add(1, Ordering::Relaxed);
            s.sum_us.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        };
        if let Some(s) = self.routes.read().expect("metrics lock").get(&route) {
            return observe(s);
        }
        observe(self.routes.write().expect("metrics lock").entry(route).or_default());
    }

    pub fn event(&self, kind: EventKind) {
        if kind == EventKind::RateLimited {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        } else if let Some(i) = GUEST_EVENTS.iter().position(|(k, _)| *k == kind) {
            self.guests[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request failed on the database (`unavailable`) or on an internal error.
    pub fn failure(&self, unavailable: bool) {
        let counter = if unavailable { &self.database_unavailable } else { &self.internal_errors };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Everything, in Prometheus' text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let routes = self.routes.read().expect("metrics lock");
        let mut keys: Vec<_> = routes.keys().copied().collect();
        keys.sort();
        out.push_str("# HELP kernia_http_requests_total Requests answered, by route and status.\n");
        out.push_str("# TYPE kernia_http_requests_total counter\n");
        for key in &keys {
            let mut statuses = routes[key].statuses.lock().expect("metrics lock").clone();
            statuses.sort();
            for (status, n) in statuses {
                let _ = writeln!(out, "kernia_http_requests_total{{{},status=\"{status}\"}} {n}", labels(*key));
            }
        }
        out.push_str("# HELP kernia_http_request_duration_seconds Time from the request to its answer, by route.\n");
        out.push_str("# TYPE kernia_http_request_duration_seconds histogram\n");
        for key in &keys {
            let s = &routes[key];
            let mut cumulative = 0;
            for (le, bucket) in BUCKETS.iter().zip(&s.buckets) {
                cumulative += bucket.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "kernia_http_request_duration_seconds_bucket{{{},le=\"{le}\"}} {cumulative}",
                    labels(*key)
                );
            }
            let count = s.count.load(Ordering::Relaxed);
            let sum = s.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
            let l = labels(*key);
            let _ = writeln!(out, "kernia_http_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "kernia_http_request_duration_seconds_sum{{{l}}} {sum}");
            let _ = writeln!(out, "kernia_http_request_duration_seconds_count{{{l}}} {count}");
        }
        out.push_str("# HELP kernia_guests_total Guests, by what happened to them.\n");
        out.push_str("# TYPE kernia_guests_total counter\n");
        for ((_, name), n) in GUEST_EVENTS.iter().zip(&self.guests) {
            let _ = writeln!(out, "kernia_guests_total{{event=\"{name}\"}} {}", n.load(Ordering::Relaxed));
        }
        let counters = [
            ("kernia_rate_limited_total", "Requests refused by the rate limiter.", &self.rate_limited),
            (
                "kernia_database_unavailable_total",
                "Requests answered 503 because the database did not answer in time.",
                &self.database_unavailable,
            ),
            ("kernia_internal_errors_total", "Requests answered 500 (logged).", &self.internal_errors),
        ];
        for (name, help, n) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", n.load(Ordering::Relaxed));
        }
        out
    }
}

fn labels((method, path): (&str, &str)) -> String {
    if method.is_empty() {
        format!("route=\"{path}\"")
    } else {
        format!("method=\"{method}\",route=\"{path}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_as_prometheus_text() {
        let m = Metrics::default();
        m.request(("POST", "/sign-in/anonymous"), 200, Duration::from_micros(700));
        m.request(("POST", "/sign-in/anonymous"), 200, Duration::from_millis(3));
        m.request(("POST", "/sign-in/anonymous"), 429, Duration::from_micros(50));
        m.request(UNMATCHED, 404, Duration::from_micros(10));
        m.event(EventKind::Created);
        m.event(EventKind::RateLimited);
        m.failure(true);
        let text = m.render();
        for line in [
            r#"kernia_http_requests_total{method="POST",route="/sign-in/anonymous",status="200"} 2"#,
            r#"kernia_http_requests_total{method="POST",route="/sign-in/anonymous",status="429"} 1"#,
            r#"kernia_http_requests_total{route="unmatched",status="404"} 1"#,
            r#"kernia_http_request_duration_seconds_bucket{method="POST",route="/sign-in/anonymous",le="0.001"} 2"#,
            r#"kernia_http_request_duration_seconds_bucket{method="POST",route="/sign-in/anonymous",le="0.005"} 3"#,
            r#"kernia_http_request_duration_seconds_count{method="POST",route="/sign-in/anonymous"} 3"#,
            r#"kernia_guests_total{event="created"} 1"#,
            r#"kernia_guests_total{event="converted"} 0"#,
            "kernia_rate_limited_total 1",
            "kernia_database_unavailable_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
    }
}
