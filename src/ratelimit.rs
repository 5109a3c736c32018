//! The in-memory rate limiter of spec §12: per `<ip>|<path>` keep the count and
//! the time of the last allowed request; the window runs from that request.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::config::{RateLimitOptions, RateLimitRule};
use crate::error::AuthError;

/// Better Auth's built-in stricter rules, applied before custom rules.
const SPECIAL: &[(&str, RateLimitRule)] = &[
    ("/sign-in", RateLimitRule { window: 10, max: 3 }),
    ("/sign-up", RateLimitRule { window: 10, max: 3 }),
    ("/change-password", RateLimitRule { window: 10, max: 3 }),
    ("/change-email", RateLimitRule { window: 10, max: 3 }),
];

/// Entries untouched for this long are forgotten when the table is swept.
const SWEEP_EVERY: usize = 4096;

pub struct RateLimiter {
    opts: RateLimitOptions,
    /// Plugins' rules (path, exact or ending in `*`): they replace the special rules.
    plugin_rules: Vec<(String, RateLimitRule)>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    buckets: HashMap<String, (u64, i64)>,
    since_sweep: usize,
}

fn matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

impl RateLimiter {
    pub fn new(opts: RateLimitOptions, plugin_rules: Vec<(String, RateLimitRule)>) -> Self {
        RateLimiter { opts, plugin_rules, state: Mutex::new(State::default()) }
    }

    /// The rule for `path`, or `None` when it is not limited.
    fn rule(&self, path: &str) -> Option<RateLimitRule> {
        let mut rule = Some(RateLimitRule { window: self.opts.window, max: self.opts.max });
        if let Some((_, special)) = SPECIAL.iter().find(|(prefix, _)| path.starts_with(prefix)) {
            rule = Some(*special);
        }
        if let Some((_, plugin)) = self.plugin_rules.iter().find(|(p, _)| matches(p, path)) {
            rule = Some(*plugin);
        }
        if let Some((_, custom)) = self.opts.custom_rules.iter().find(|(p, _)| matches(p, path)) {
            rule = *custom;
        }
        rule
    }

    pub fn check(&self, path: &str, ip: Option<&str>, now_ms: i64) -> Result<(), AuthError> {
        if !self.opts.enabled {
            return Ok(());
        }
        let path = path.trim_end_matches('/');
        let Some(rule) = self.rule(path) else {
            return Ok(());
        };
        let key = format!("{}|{path}", ip.unwrap_or("no-trusted-ip"));
        let window_ms = rule.window as i64 * 1000;
        let mut st = self.state.lock().expect("rate-limit lock");
        st.since_sweep += 1;
        if st.since_sweep >= SWEEP_EVERY {
            st.since_sweep = 0;
            let longest = self.longest_window_ms();
            st.buckets.retain(|_, (_, last)| now_ms - *last < longest);
        }
        let entry = st.buckets.entry(key).or_insert((0, i64::MIN / 2));
        if now_ms - entry.1 >= window_ms {
            *entry = (1, now_ms);
            return Ok(());
        }
        if entry.0 >= rule.max {
            let retry_ms = entry.1 + window_ms - now_ms;
            return Err(AuthError::TooManyRequests { retry_after: ((retry_ms + 999) / 1000).max(1) as u64 });
        }
        *entry = (entry.0 + 1, now_ms);
        Ok(())
    }

    fn longest_window_ms(&self) -> i64 {
        let custom = self.opts.custom_rules.iter().filter_map(|(_, r)| r.map(|r| r.window)).max().unwrap_or(0);
        let plugin = self.plugin_rules.iter().map(|(_, r)| r.window).max().unwrap_or(0);
        self.opts.window.max(10).max(custom).max(plugin) as i64 * 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(custom: Vec<(String, Option<RateLimitRule>)>) -> RateLimiter {
        RateLimiter::new(
            RateLimitOptions { enabled: true, window: 60, max: 5, storage: "memory".into(), custom_rules: custom },
            vec![("/sign-in/magic-link*".into(), RateLimitRule { window: 60, max: 2 })],
        )
    }

    #[test]
    fn plugin_rules_replace_the_special_rules_and_custom_rules_win() {
        let l = limiter(vec![]);
        l.check("/sign-in/magic-link", Some("ip"), 0).unwrap();
        l.check("/sign-in/magic-link", Some("ip"), 0).unwrap();
        assert_eq!(
            l.check("/sign-in/magic-link", Some("ip"), 30_000),
            Err(AuthError::TooManyRequests { retry_after: 30 })
        );
        let l = limiter(vec![("/sign-in/magic-link".into(), None)]);
        for _ in 0..10 {
            l.check("/sign-in/magic-link", Some("ip"), 0).unwrap();
        }
    }

    #[test]
    fn sign_in_gets_three_per_ten_seconds() {
        let l = limiter(vec![]);
        for _ in 0..3 {
            l.check("/sign-in/email", Some("1.1.1.1"), 0).unwrap();
        }
        assert_eq!(
            l.check("/sign-in/email", Some("1.1.1.1"), 1000),
            Err(AuthError::TooManyRequests { retry_after: 9 })
        );
        l.check("/sign-in/email", Some("2.2.2.2"), 1000).unwrap();
        l.check("/sign-in/email", Some("1.1.1.1"), 10_000).unwrap();
    }

    #[test]
    fn global_and_custom_rules() {
        let l = limiter(vec![
            ("/get-session".into(), None),
            ("/custom/*".into(), Some(RateLimitRule { window: 1, max: 1 })),
        ]);
        for _ in 0..50 {
            l.check("/get-session", Some("ip"), 0).unwrap();
        }
        l.check("/custom/a", Some("ip"), 0).unwrap();
        assert!(l.check("/custom/a", Some("ip"), 10).is_err());
        for _ in 0..5 {
            l.check("/ok", Some("ip"), 0).unwrap();
        }
        assert!(l.check("/ok", Some("ip"), 0).is_err());
    }
}
