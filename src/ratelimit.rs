//! The rate limiter of spec §12: per `<ip>|<path>` keep the count and the time of
//! the last allowed request; the window runs from that request. Buckets live in
//! memory (one process) or in the database's `rateLimit` table (every process
//! sharing the database counts together).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::{RateLimitOptions, RateLimitRule};
use crate::error::AuthError;
use crate::storage::redis::Redis;
use crate::storage::Store;

/// Better Auth's built-in stricter rules, applied before custom rules.
const SPECIAL: &[(&str, RateLimitRule)] = &[
    ("/sign-in", RateLimitRule { window: 10, max: 3 }),
    ("/sign-up", RateLimitRule { window: 10, max: 3 }),
    ("/change-password", RateLimitRule { window: 10, max: 3 }),
    ("/change-email", RateLimitRule { window: 10, max: 3 }),
    ("/request-password-reset", RateLimitRule { window: 60, max: 3 }),
    ("/send-verification-email", RateLimitRule { window: 60, max: 3 }),
];

pub struct RateLimiter {
    opts: RateLimitOptions,
    /// Plugins' rules (path, exact or ending in `*`): they replace the special
    /// rules; `None` turns limiting off for the path.
    plugin_rules: Vec<(String, Option<RateLimitRule>)>,
    state: Mutex<State>,
    /// When the database's buckets were last pruned (engine clock, ms).
    last_prune_ms: AtomicI64,
    /// Redis, for `storage: "secondary-storage"`.
    redis: Option<Arc<Redis>>,
}

/// Buckets untouched for longer than the longest window are forgotten once per that
/// window: the first request after it has passed removes them (one statement for the
/// database's, a sweep of the map for memory's), so their number stays bounded by the
/// clients of one window, whatever the traffic.
#[derive(Default)]
struct State {
    buckets: HashMap<String, (u64, i64)>,
    last_sweep_ms: i64,
}

fn matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

fn too_many(last_ms: i64, window_ms: i64, now_ms: i64) -> AuthError {
    let retry_ms = last_ms + window_ms - now_ms;
    AuthError::TooManyRequests { retry_after: ((retry_ms + 999) / 1000).max(1) as u64 }
}

impl RateLimiter {
    pub fn new(opts: RateLimitOptions, plugin_rules: Vec<(String, Option<RateLimitRule>)>) -> Self {
        RateLimiter {
            opts,
            plugin_rules,
            state: Mutex::new(State::default()),
            last_prune_ms: AtomicI64::new(0),
            redis: None,
        }
    }

    /// Counts in Redis when the storage is `"secondary-storage"`.
    pub fn use_redis(&mut self, redis: Option<Arc<Redis>>) {
        self.redis = redis;
    }

    /// The rule for `path`, or `None` when it is not limited.
    fn rule(&self, path: &str) -> Option<RateLimitRule> {
        let mut rule = Some(RateLimitRule { window: self.opts.window, max: self.opts.max });
        if let Some((_, special)) = SPECIAL.iter().find(|(prefix, _)| path.starts_with(prefix)) {
            rule = Some(*special);
        }
        if let Some((_, plugin)) = self.plugin_rules.iter().find(|(p, _)| matches(p, path)) {
            rule = *plugin;
        }
        if let Some((_, custom)) = self.opts.custom_rules.iter().find(|(p, _)| matches(p, path)) {
            rule = *custom;
        }
        rule
    }

    /// Counts the request; `TooManyRequests` when its bucket is full.
    pub async fn check(&self, store: &dyn Store, path: &str, ip: Option<&str>, now_ms: i64) -> Result<(), AuthError> {
        if !self.opts.enabled {
            return Ok(());
        }
        let path = path.trim_end_matches('/');
        let Some(rule) = self.rule(path) else {
            return Ok(());
        };
        let key = format!("{}|{path}", ip.unwrap_or("no-trusted-ip"));
        let window_ms = rule.window as i64 * 1000;
        if self.opts.storage == "secondary-storage" {
            if let Some(redis) = &self.redis {
                // While Redis is away each process counts on its own, as with "memory".
                return match redis.rate_limit(&key, now_ms, window_ms, rule.max).await {
                    Ok(None) => Ok(()),
                    Ok(Some(last)) => Err(too_many(last, window_ms, now_ms)),
                    Err(_) => self.check_memory(key, rule, now_ms),
                };
            }
        }
        if self.opts.storage != "database" {
            return self.check_memory(key, rule, now_ms);
        }
        let longest = self.longest_window_ms();
        let last = self.last_prune_ms.load(Ordering::Relaxed);
        // One request per window prunes: the one that moves the mark.
        if now_ms - last >= longest
            && self.last_prune_ms.compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            store.prune_rate_limits(now_ms - longest).await?;
        }
        match store.rate_limit(&key, now_ms, window_ms, rule.max).await? {
            None => Ok(()),
            Some(last) => Err(too_many(last, window_ms, now_ms)),
        }
    }

    fn check_memory(&self, key: String, rule: RateLimitRule, now_ms: i64) -> Result<(), AuthError> {
        let window_ms = rule.window as i64 * 1000;
        let mut st = self.state.lock().expect("rate-limit lock");
        let longest = self.longest_window_ms();
        if now_ms - st.last_sweep_ms >= longest {
            st.last_sweep_ms = now_ms;
            st.buckets.retain(|_, (_, last)| now_ms - *last < longest);
        }
        let entry = st.buckets.entry(key).or_insert((0, i64::MIN / 2));
        if now_ms - entry.1 >= window_ms {
            *entry = (1, now_ms);
            return Ok(());
        }
        if entry.0 >= rule.max {
            return Err(too_many(entry.1, window_ms, now_ms));
        }
        *entry = (entry.0 + 1, now_ms);
        Ok(())
    }

    fn longest_window_ms(&self) -> i64 {
        let custom = self.opts.custom_rules.iter().filter_map(|(_, r)| r.map(|r| r.window)).max().unwrap_or(0);
        let plugin = self.plugin_rules.iter().filter_map(|(_, r)| r.map(|r| r.window)).max().unwrap_or(0);
        self.opts.window.max(10).max(custom).max(plugin) as i64 * 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl RateLimiter {
        fn check_at(&self, path: &str, ip: Option<&str>, now_ms: i64) -> Result<(), AuthError> {
            let key = format!("{}|{path}", ip.unwrap_or("no-trusted-ip"));
            match self.rule(path) {
                Some(rule) => self.check_memory(key, rule, now_ms),
                None => Ok(()),
            }
        }
    }

    fn limiter(custom: Vec<(String, Option<RateLimitRule>)>) -> RateLimiter {
        RateLimiter::new(
            RateLimitOptions { enabled: true, window: 60, max: 5, storage: "memory".into(), custom_rules: custom },
            vec![
                ("/sign-in/magic-link*".into(), Some(RateLimitRule { window: 60, max: 2 })),
                ("/sign-in/anonymous".into(), None),
            ],
        )
    }

    #[test]
    fn plugin_rules_replace_the_special_rules_and_custom_rules_win() {
        let l = limiter(vec![]);
        l.check_at("/sign-in/magic-link", Some("ip"), 0).unwrap();
        l.check_at("/sign-in/magic-link", Some("ip"), 0).unwrap();
        assert_eq!(
            l.check_at("/sign-in/magic-link", Some("ip"), 30_000),
            Err(AuthError::TooManyRequests { retry_after: 30 })
        );
        let l = limiter(vec![("/sign-in/magic-link".into(), None)]);
        for _ in 0..10 {
            l.check_at("/sign-in/magic-link", Some("ip"), 0).unwrap();
        }
    }

    #[test]
    fn a_plugin_can_turn_limiting_off_for_its_path() {
        let l = limiter(vec![]);
        assert_eq!(l.rule("/sign-in/anonymous"), None);
        assert_eq!(l.rule("/sign-in/email"), Some(RateLimitRule { window: 10, max: 3 }));
    }

    #[test]
    fn sign_in_gets_three_per_ten_seconds() {
        let l = limiter(vec![]);
        for _ in 0..3 {
            l.check_at("/sign-in/email", Some("1.1.1.1"), 0).unwrap();
        }
        assert_eq!(
            l.check_at("/sign-in/email", Some("1.1.1.1"), 1000),
            Err(AuthError::TooManyRequests { retry_after: 9 })
        );
        l.check_at("/sign-in/email", Some("2.2.2.2"), 1000).unwrap();
        l.check_at("/sign-in/email", Some("1.1.1.1"), 10_000).unwrap();
    }

    #[test]
    fn global_and_custom_rules() {
        let l = limiter(vec![
            ("/get-session".into(), None),
            ("/custom/*".into(), Some(RateLimitRule { window: 1, max: 1 })),
        ]);
        for _ in 0..50 {
            l.check_at("/get-session", Some("ip"), 0).unwrap();
        }
        l.check_at("/custom/a", Some("ip"), 0).unwrap();
        assert!(l.check_at("/custom/a", Some("ip"), 10).is_err());
        for _ in 0..5 {
            l.check_at("/ok", Some("ip"), 0).unwrap();
        }
        assert!(l.check_at("/ok", Some("ip"), 0).is_err());
    }

    #[test]
    fn idle_buckets_are_forgotten_once_per_longest_window() {
        let l = limiter(vec![]);
        let window = l.longest_window_ms();
        let start = 1_000_000;
        for ip in ["a", "b", "c"] {
            l.check_at("/ok", Some(ip), start).unwrap();
        }
        assert_eq!(l.state.lock().unwrap().buckets.len(), 3);
        // Within the window nothing is swept, even for a new client.
        l.check_at("/ok", Some("d"), start + window - 1).unwrap();
        assert_eq!(l.state.lock().unwrap().buckets.len(), 4);
        // The first request after it forgets those idle for a whole window.
        l.check_at("/ok", Some("d"), start + window).unwrap();
        let buckets = &l.state.lock().unwrap().buckets;
        assert_eq!(buckets.keys().map(String::as_str).collect::<Vec<_>>(), ["d|/ok"]);
    }
}
