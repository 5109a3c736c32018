//! Cookie names, attributes and serialization (spec §2.1, §2.2).

use crate::config::{Config, CookieAttributes};
use crate::http::request::Request;

/// The names of the session cookies, with the prefix and `__Secure-` rules applied once.
#[derive(Debug, Clone)]
pub struct CookieNames {
    pub session_token: String,
    pub session_data: String,
    pub dont_remember: String,
    /// The signed token naming a passkey ceremony's challenge (spec §10).
    pub passkey_challenge: String,
    secure: bool,
    attributes: CookieAttributes,
}

impl CookieNames {
    pub fn new(cfg: &Config) -> Self {
        let secure = cfg.secure_cookies;
        let name = |n: &str| {
            let base = format!("{}.{n}", cfg.advanced.cookie_prefix);
            if secure {
                format!("__Secure-{base}")
            } else {
                base
            }
        };
        CookieNames {
            session_token: name("session_token"),
            session_data: name("session_data"),
            dont_remember: name("dont_remember"),
            passkey_challenge: name("better-auth-passkey"),
            secure,
            attributes: cfg.advanced.default_cookie_attributes.clone(),
        }
    }

    /// `name=value; Max-Age=N; Domain=D; Path=/; HttpOnly; Secure; SameSite=Lax; Partitioned`,
    /// in better-call's order, with `advanced.default_cookie_attributes` applied.
    pub fn set(&self, name: &str, value: &str, max_age: Option<i64>) -> String {
        let a = &self.attributes;
        let mut out = format!("{name}={value}");
        if let Some(age) = max_age {
            out.push_str(&format!("; Max-Age={age}"));
        }
        if let Some(domain) = &a.domain {
            out.push_str(&format!("; Domain={domain}"));
        }
        out.push_str(&format!("; Path={}", a.path.as_deref().unwrap_or("/")));
        if a.http_only.unwrap_or(true) {
            out.push_str("; HttpOnly");
        }
        if a.secure.unwrap_or(self.secure) {
            out.push_str("; Secure");
        }
        let same_site = match a.same_site.as_deref() {
            Some("strict") => "Strict",
            Some("none") => "None",
            _ => "Lax",
        };
        out.push_str(&format!("; SameSite={same_site}"));
        if a.partitioned == Some(true) {
            out.push_str("; Partitioned");
        }
        out
    }

    pub fn expire(&self, name: &str) -> String {
        self.set(name, "", Some(0))
    }

    /// Expires every session cookie (spec §2.4 `deleteSessionCookie`).
    pub fn expire_session(&self) -> Vec<String> {
        vec![self.expire(&self.session_token), self.expire(&self.session_data), self.expire(&self.dont_remember)]
    }

    /// The last word on a response's cookies: one `Set-Cookie` per name (the last one
    /// set, which is what a browser keeps), and when the response writes or expires
    /// `session_data`, every other `session_data` cookie or chunk the request carries
    /// expired, so a cache never mixes old chunks with new (Better Auth's chunked store).
    pub fn tidy(&self, req: &Request, headers: &mut Vec<(String, String)>) {
        fn name(set_cookie: &str) -> &str {
            set_cookie.split_once('=').map_or(set_cookie, |(n, _)| n)
        }
        let count = headers.iter().filter(|(k, _)| k == "set-cookie").count();
        if count == 0 {
            return;
        }
        if count > 1 {
            // From the last one back: an earlier Set-Cookie of a name seen already is dropped.
            let mut seen = std::collections::HashSet::new();
            for i in (0..headers.len()).rev() {
                if headers[i].0 == "set-cookie" && !seen.insert(name(&headers[i].1).to_owned()) {
                    headers.remove(i);
                }
            }
        }
        let data = self.session_data.as_str();
        let set: Vec<&str> = headers.iter().filter(|(k, _)| k == "set-cookie").map(|(_, v)| name(v)).collect();
        if !set.iter().any(|n| n.starts_with(data)) {
            return;
        }
        let stale: Vec<String> = req
            .cookies()
            .map(|(n, _)| n)
            .filter(|n| n.starts_with(data) && !set.contains(n))
            .map(|n| self.expire(n))
            .collect();
        headers.extend(stale.into_iter().map(|c| ("set-cookie".to_owned(), c)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(base_url: &str) -> CookieNames {
        let cfg =
            Config::from_json(&format!(r#"{{"database":"sqlite::memory:","secret":"x","base_url":"{base_url}"}}"#))
                .unwrap();
        CookieNames::new(&cfg)
    }

    #[test]
    fn plain_http_cookies() {
        let n = names("http://localhost:3000");
        assert_eq!(n.session_token, "better-auth.session_token");
        assert_eq!(
            n.set(&n.session_token, "v", Some(604800)),
            "better-auth.session_token=v; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax"
        );
        assert_eq!(n.expire(&n.session_token), "better-auth.session_token=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax");
    }

    #[test]
    fn default_cookie_attributes_replace_the_defaults_but_not_max_age() {
        let cfg = Config::from_json(
            r#"{"database":"sqlite::memory:","secret":"x","base_url":"https://app.example",
            "advanced":{"default_cookie_attributes":{"same_site":"none","partitioned":true,
            "domain":"example.com","http_only":false}}}"#,
        )
        .unwrap();
        let n = CookieNames::new(&cfg);
        assert_eq!(
            n.set(&n.session_token, "v", Some(60)),
            "__Secure-better-auth.session_token=v; Max-Age=60; Domain=example.com; Path=/; Secure; SameSite=None; \
             Partitioned"
        );
    }

    #[test]
    fn cookie_attributes_a_browser_would_drop_are_refused() {
        for attrs in [
            r#"{"same_site":"none"}"#,
            r#"{"partitioned":true}"#,
            r#"{"same_site":"sideways"}"#,
            r#"{"path":"nope"}"#,
            r#"{"domain":"a;b"}"#,
        ] {
            let json = format!(
                r#"{{"database":"sqlite::memory:","secret":"x","advanced":{{"default_cookie_attributes":{attrs}}}}}"#
            );
            let err = Config::from_json(&json).unwrap_err().to_string();
            assert!(err.contains("default_cookie_attributes"), "{attrs}: {err}");
        }
    }

    #[test]
    fn https_cookies_are_secure_prefixed() {
        let n = names("https://example.com");
        assert_eq!(n.session_token, "__Secure-better-auth.session_token");
        assert!(n.set(&n.session_token, "v", None).ends_with("; Path=/; HttpOnly; Secure; SameSite=Lax"));
    }
}
