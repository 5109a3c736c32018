//! Better Auth's cookie cache (`session.cookieCache`, spec §2.5 and §11.1 step 2): a
//! short-lived signed `session_data` cookie holding the session and its user, so
//! get-session and the app's own session checks answer without the database.
//!
//! The value is Better Auth's `compact` strategy, byte for byte what its servers write
//! and read: unpadded base64url of `{"session":<payload>,"expiresAt":<ms>,"signature":<sig>}`
//! where the payload is `{"session","user","updatedAt","version"}` and the signature is the
//! unpadded base64url HMAC-SHA256, under the secret, of the payload's JSON with
//! `"expiresAt"` added as its last key (`JSON.stringify({...payload, expiresAt})`).
//! Reading re-creates that text from the payload's own bytes, so a cookie written by a
//! Better Auth server with the same secret verifies here and ours there.

use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::SessionOptions;
use crate::crypto::Signer;
use crate::http::request::Request;
use crate::model::{Session, SessionAndUserJson, SessionIn, SessionJson, User, UserFields, UserIn, UserJson};

use super::cookies::CookieNames;
use super::verified::Verified;

/// Safari's per-cookie floor is about 4 093 bytes; Better Auth sizes chunks to this.
const MAX_COOKIE_SIZE: usize = 4050;
/// More chunks than this and the cache is skipped (the session stays in the database).
const MAX_COOKIE_CHUNKS: usize = 100;
/// A "don't remember me" session's cache cookie has no Max-Age; its content is trusted
/// this long (Better Auth's `maxAge || 60`).
const BROWSER_SESSION_CACHE_S: i64 = 60;

/// Sound `session_data` values remembered at most (see [`Verified`]).
const VERIFIED_MAX: usize = 4096;

/// The cookie cache's settings, and the values it has verified.
#[derive(Debug, Clone)]
pub struct CookieCache {
    pub enabled: bool,
    max_age: i64,
    version: String,
    fields: UserFields,
    verified: Arc<Verified<Sound>>,
}

/// What a sound `session_data` value holds.
pub struct Sound {
    pub session: Session,
    pub user: User,
    version: Option<String>,
    /// The time the value is trusted until.
    expires_at: i64,
    fields: UserFields,
    /// get-session's answer, written the first time it is asked for.
    answer: OnceLock<Vec<u8>>,
}

impl Sound {
    /// get-session's JSON answer for this session and user: `{"session", "user"}`.
    pub fn answer_json(&self) -> Vec<u8> {
        self.answer
            .get_or_init(|| {
                serde_json::to_vec(&SessionAndUserJson(&self.session, &self.user, self.fields))
                    .expect("the answer serializes")
            })
            .clone()
    }
}

/// What the request's `session_data` cookie says.
#[allow(clippy::large_enum_variant)] // lives for one call, as `Current` does
pub enum Cached {
    /// No cookie, or the cache is not to be used and the cookie is sound.
    Absent,
    /// A cookie that does not decode or verify: expired in the answer.
    Invalid,
    /// A sound cookie that may not answer: another session's token, another version,
    /// or past its time. Expired in the answer, and the database decides.
    Stale,
    /// What the cookie holds: its session and user.
    Hit(Arc<Sound>),
}

impl CookieCache {
    pub fn new(opts: &SessionOptions, fields: UserFields) -> Self {
        CookieCache {
            enabled: opts.cookie_cache_enabled,
            max_age: opts.cookie_cache_max_age,
            version: opts.cookie_cache_version.clone(),
            fields,
            verified: Arc::new(Verified::new(VERIFIED_MAX)),
        }
    }

    /// The `Set-Cookie` values that cache `session` and `user`: none when the cache is
    /// off. `remember: false` (a browser-session cookie) is trusted for a minute.
    pub fn write(
        &self,
        signer: &Signer,
        names: &CookieNames,
        session: &Session,
        user: &User,
        remember: bool,
        now_ms: i64,
    ) -> Vec<String> {
        if !self.enabled {
            return Vec::new();
        }
        let max_age = remember.then_some(self.max_age);
        let expires_at = now_ms + max_age.unwrap_or(BROWSER_SESSION_CACHE_S) * 1000;
        let payload = serde_json::to_string(&Payload {
            session: SessionJson(session),
            user: UserJson(user, self.fields),
            updated_at: now_ms,
            version: &self.version,
        })
        .expect("the cache payload serializes");
        let signature = signer.mac_b64url(signed_text(&payload, expires_at).as_bytes());
        let outer = format!(r#"{{"session":{payload},"expiresAt":{expires_at},"signature":"{signature}"}}"#);
        let value = URL_SAFE_NO_PAD.encode(outer);
        chunks(names, &names.session_data, &value, max_age)
    }

    /// Reads the request's `session_data` for the session whose signed token is `token`.
    /// With `use_cache` false (the cache is off, or the caller asked for the database)
    /// a sound cookie is [`Cached::Absent`] and only a broken one is reported.
    pub fn read(
        &self,
        signer: &Signer,
        names: &CookieNames,
        req: &Request,
        token: &str,
        use_cache: bool,
        now_ms: i64,
    ) -> Cached {
        let Some(value) = chunked_cookie(req, &names.session_data) else {
            return Cached::Absent;
        };
        let fields = self.fields;
        let sound = self.verified.get_or_verify(&value, |value| {
            let (payload, expires_at) = decode(signer, value)?;
            Some(Sound {
                session: payload.session.into(),
                user: payload.user.into(),
                version: payload.version,
                expires_at,
                fields,
                answer: OnceLock::new(),
            })
        });
        let Some(sound) = sound else {
            return Cached::Invalid;
        };
        if !use_cache || !self.enabled {
            return Cached::Absent;
        }
        let version = sound.version.as_deref().unwrap_or("1");
        let expired = sound.expires_at < now_ms || sound.session.expires_at < now_ms;
        if sound.session.token != token || version != self.version || expired {
            return Cached::Stale;
        }
        Cached::Hit(sound)
    }
}

/// `JSON.stringify({...payload, expiresAt})` for a payload serialized as `payload`.
fn signed_text(payload: &str, expires_at: i64) -> String {
    let open = &payload[..payload.len() - 1];
    format!(r#"{open},"expiresAt":{expires_at}}}"#)
}

/// The payload of a sound cookie value and the time it is trusted until.
fn decode(signer: &Signer, value: &str) -> Option<(ReadPayload, i64)> {
    let bytes = URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')).ok()?;
    let outer: Outer = serde_json::from_slice(&bytes).ok()?;
    let raw = outer.session.get();
    // The payload must be an object with keys (`{}` has nowhere to put `expiresAt`), and
    // `expiresAt` an integer, which JavaScript prints as its digits.
    let expires_at = outer.expires_at.as_i64()?;
    if !(raw.starts_with('{') && raw.ends_with('}') && raw.len() > 2) {
        return None;
    }
    if !signer.verify_mac_b64url(signed_text(raw, expires_at).as_bytes(), &outer.signature) {
        return None;
    }
    let payload: ReadPayload = serde_json::from_str(raw).ok()?;
    Some((payload, expires_at))
}

/// `session_data` as the request carries it: the cookie itself, or its chunks
/// `<name>.0`, `<name>.1`, ... joined in order.
fn chunked_cookie(req: &Request, name: &str) -> Option<String> {
    if let Some(value) = req.cookie(name).filter(|v| !v.is_empty()) {
        return Some(value.to_owned());
    }
    let mut parts: Vec<(u32, &str)> = req
        .cookies()
        .filter_map(|(n, v)| {
            let index = n.strip_prefix(name)?.strip_prefix('.')?;
            Some((index.parse().ok()?, v))
        })
        .collect();
    if parts.is_empty() {
        return None;
    }
    parts.sort_by_key(|(i, _)| *i);
    Some(parts.into_iter().map(|(_, v)| v).collect())
}

/// `value` as one cookie or, when the cookie would pass the browsers' size limit, as
/// numbered chunks sized for the longest chunk name; nothing beyond 100 chunks.
fn chunks(names: &CookieNames, name: &str, value: &str, max_age: Option<i64>) -> Vec<String> {
    let widest = format!("{name}.{}", MAX_COOKIE_CHUNKS - 1);
    let room = MAX_COOKIE_SIZE.saturating_sub(names.set(&widest, "", max_age).len());
    if value.len() <= room {
        return vec![names.set(name, value, max_age)];
    }
    if room == 0 || value.len().div_ceil(room) > MAX_COOKIE_CHUNKS {
        crate::log::warn(format_args!(
            "the session is too large for the cookie cache ({} bytes): it is read from the database",
            value.len()
        ));
        return Vec::new();
    }
    // base64url is ASCII, so any byte offset is a character boundary.
    value
        .as_bytes()
        .chunks(room)
        .enumerate()
        .map(|(i, part)| {
            names.set(&format!("{name}.{i}"), std::str::from_utf8(part).expect("base64url is ASCII"), max_age)
        })
        .collect()
}

#[derive(serde::Serialize)]
struct Payload<'a> {
    session: SessionJson<'a>,
    user: UserJson<'a>,
    #[serde(rename = "updatedAt")]
    updated_at: i64,
    version: &'a str,
}

#[derive(Deserialize)]
struct Outer<'a> {
    #[serde(borrow)]
    session: &'a RawValue,
    #[serde(rename = "expiresAt")]
    expires_at: serde_json::Number,
    signature: String,
}

#[derive(Deserialize)]
struct ReadPayload {
    session: SessionIn,
    user: UserIn,
    /// Required, as Better Auth's schema requires it; not used.
    #[serde(rename = "updatedAt")]
    _updated_at: f64,
    version: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const NOW: i64 = 1_787_479_872_345;

    fn setup(extra: &str) -> (Config, CookieNames, CookieCache) {
        let cfg = Config::from_json(&format!(
            r#"{{"database":"sqlite::memory:","secret":"better-auth-secret-12345678901234567890",
            "session":{{"cookie_cache_enabled":true{extra}}}}}"#
        ))
        .unwrap();
        let names = CookieNames::new(&cfg);
        let cache = CookieCache::new(&cfg.session, cfg.user_fields());
        (cfg, names, cache)
    }

    fn session_and_user() -> (Session, User) {
        let user = User::new("u1".into(), "Ada \"Lovelace\" ü\n".into(), "ada@example.com".into(), false, NOW - 5000);
        let session = Session {
            id: "s1".into(),
            token: "abcdefghijklmnopqrstuvwxyz012345".into(),
            user_id: "u1".into(),
            expires_at: NOW + 604_800_000,
            created_at: NOW - 1000,
            updated_at: NOW - 1000,
            ip_address: Some("127.0.0.1".into()),
            user_agent: None,
        };
        (session, user)
    }

    fn request_with(cookies: &[String]) -> Request {
        let pairs: Vec<&str> = cookies.iter().map(|c| c.split(';').next().unwrap()).collect();
        Request::new("GET", "/get-session").with_header("cookie", &pairs.join("; "))
    }

    #[test]
    fn the_written_cookie_reads_back() {
        let (cfg, names, cache) = setup("");
        let (session, user) = session_and_user();
        let cookies = cache.write(&cfg.signer, &names, &session, &user, true, NOW);
        assert_eq!(cookies.len(), 1);
        assert!(cookies[0].starts_with("better-auth.session_data="), "{}", cookies[0]);
        assert!(cookies[0].contains("; Max-Age=300; Path=/; HttpOnly; SameSite=Lax"), "{}", cookies[0]);
        let req = request_with(&cookies);
        match cache.read(&cfg.signer, &names, &req, &session.token, true, NOW + 299_000) {
            Cached::Hit(hit) => {
                assert_eq!(hit.session, session);
                assert_eq!(hit.user, user);
            }
            _ => panic!("expected a hit"),
        }
    }

    #[test]
    fn the_payload_is_better_auths_compact_format() {
        let (cfg, names, cache) = setup("");
        let (session, user) = session_and_user();
        let cookie = &cache.write(&cfg.signer, &names, &session, &user, true, NOW)[0];
        let value = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
        let outer: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(value).unwrap()).unwrap();
        let keys: Vec<&String> = outer.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["session", "expiresAt", "signature"]);
        assert_eq!(outer["expiresAt"], NOW + 300_000);
        let payload = &outer["session"];
        let keys: Vec<&String> = payload.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["session", "user", "updatedAt", "version"]);
        assert_eq!(payload["session"]["expiresAt"], "2026-08-30T10:11:12.345Z");
        assert_eq!(payload["user"]["name"], "Ada \"Lovelace\" ü\n");
        assert_eq!(payload["version"], "1");
        // The signature as Better Auth computes it, from the JSON text of the payload.
        let text = serde_json::to_string(payload).unwrap();
        let signed = format!("{},\"expiresAt\":{}}}", &text[..text.len() - 1], NOW + 300_000);
        assert_eq!(outer["signature"], cfg.signer.mac_b64url(signed.as_bytes()));
    }

    #[test]
    fn a_tampered_or_foreign_cookie_is_invalid() {
        let (cfg, names, cache) = setup("");
        let (session, user) = session_and_user();
        let cookie = &cache.write(&cfg.signer, &names, &session, &user, true, NOW)[0];
        let value = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
        let mut outer: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(value).unwrap()).unwrap();
        outer["session"]["user"]["email"] = "eve@example.com".into();
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&outer).unwrap());
        let other = Signer::new("another-secret-of-at-least-thirty-two-chars");
        for (signer, value) in [(&cfg.signer, forged.as_str()), (&other, value), (&cfg.signer, "bm90IGpzb24")] {
            let req = request_with(&[format!("better-auth.session_data={value}")]);
            assert!(matches!(cache.read(signer, &names, &req, &session.token, true, NOW), Cached::Invalid));
            // Reported even when the cache is not to be used.
            assert!(matches!(cache.read(signer, &names, &req, &session.token, false, NOW), Cached::Invalid));
        }
    }

    #[test]
    fn another_token_version_or_time_is_stale() {
        let (cfg, names, cache) = setup("");
        let (session, user) = session_and_user();
        let cookies = cache.write(&cfg.signer, &names, &session, &user, true, NOW);
        let req = request_with(&cookies);
        let read = |token: &str, now: i64, cache: &CookieCache| cache.read(&cfg.signer, &names, &req, token, true, now);
        assert!(matches!(read("another-token", NOW, &cache), Cached::Stale));
        assert!(matches!(read(&session.token, NOW + 300_001, &cache), Cached::Stale));
        let (_, _, v2) = setup(r#","cookie_cache_version":"2""#);
        assert!(matches!(read(&session.token, NOW, &v2), Cached::Stale));
        assert!(matches!(cache.read(&cfg.signer, &names, &req, &session.token, false, NOW), Cached::Absent));
        // A session that ends before the cookie does is not answered past its end.
        let short = Session { expires_at: NOW + 10_000, ..session.clone() };
        let req = request_with(&cache.write(&cfg.signer, &names, &short, &user, true, NOW));
        assert!(matches!(cache.read(&cfg.signer, &names, &req, &short.token, true, NOW + 10_001), Cached::Stale));
    }

    #[test]
    fn a_browser_session_cookie_has_no_max_age_and_is_trusted_a_minute() {
        let (cfg, names, cache) = setup(r#","cookie_cache_max_age":3600"#);
        let (session, user) = session_and_user();
        let cookies = cache.write(&cfg.signer, &names, &session, &user, false, NOW);
        assert!(!cookies[0].contains("Max-Age"), "{}", cookies[0]);
        let req = request_with(&cookies);
        assert!(matches!(cache.read(&cfg.signer, &names, &req, &session.token, true, NOW + 60_000), Cached::Hit(..)));
        assert!(matches!(cache.read(&cfg.signer, &names, &req, &session.token, true, NOW + 60_001), Cached::Stale));
    }

    #[test]
    fn a_large_session_is_chunked_and_read_back_in_order() {
        let (cfg, names, cache) = setup("");
        let (session, mut user) = session_and_user();
        user.image = Some(format!("https://example.com/{}", "x".repeat(9000)));
        let cookies = cache.write(&cfg.signer, &names, &session, &user, true, NOW);
        assert_eq!(cookies.len(), 4);
        for (i, c) in cookies.iter().enumerate() {
            assert!(c.starts_with(&format!("better-auth.session_data.{i}=")), "{c}");
            assert!(c.len() <= MAX_COOKIE_SIZE, "{}", c.len());
        }
        let mut reversed = cookies.clone();
        reversed.reverse();
        let req = request_with(&reversed);
        assert!(
            matches!(cache.read(&cfg.signer, &names, &req, &session.token, true, NOW), Cached::Hit(hit) if hit.user == user)
        );
        // Far too large for any number of chunks: no cache, the database answers.
        user.image = Some("x".repeat(500_000));
        assert!(cache.write(&cfg.signer, &names, &session, &user, true, NOW).is_empty());
    }

    #[test]
    fn a_remembered_value_answers_as_a_fresh_one_would() {
        let (cfg, names, cache) = setup("");
        let (session, user) = session_and_user();
        let cookies = cache.write(&cfg.signer, &names, &session, &user, true, NOW);
        let req = request_with(&cookies);
        let read = |token: &str, now: i64| cache.read(&cfg.signer, &names, &req, token, true, now);
        assert!(matches!(read(&session.token, NOW), Cached::Hit(hit) if hit.session == session && hit.user == user));
        assert_eq!(cache.verified.len(), 1);
        // Remembered: still checked against the token and the clock at every read.
        assert!(matches!(read(&session.token, NOW + 1), Cached::Hit(..)));
        assert!(matches!(read("another-token", NOW), Cached::Stale));
        assert!(matches!(read(&session.token, NOW + 300_001), Cached::Stale));
        // A value that does not verify is never remembered.
        let value = cookies[0].split(';').next().unwrap().split_once('=').unwrap().1;
        let tampered = format!("better-auth.session_data={}A", &value[..value.len() - 1]);
        let tampered = Request::new("GET", "/get-session").with_header("cookie", &tampered);
        for _ in 0..2 {
            assert!(matches!(cache.read(&cfg.signer, &names, &tampered, &session.token, true, NOW), Cached::Invalid));
        }
        assert_eq!(cache.verified.len(), 1);
    }

    #[test]
    fn the_remembered_values_are_bounded() {
        let (cfg, names, cache) = setup("");
        let (session, user) = session_and_user();
        for i in 0..VERIFIED_MAX + 10 {
            let cookies = cache.write(&cfg.signer, &names, &session, &user, true, NOW + i as i64);
            let req = request_with(&cookies);
            assert!(matches!(cache.read(&cfg.signer, &names, &req, &session.token, true, NOW), Cached::Hit(..)));
            assert!(cache.verified.len() <= VERIFIED_MAX);
        }
    }

    #[test]
    fn off_writes_nothing() {
        let cfg = Config::from_json(r#"{"database":"sqlite::memory:","secret":"x"}"#).unwrap();
        let cache = CookieCache::new(&cfg.session, cfg.user_fields());
        let (session, user) = session_and_user();
        assert!(cache.write(&cfg.signer, &CookieNames::new(&cfg), &session, &user, true, NOW).is_empty());
    }
}
