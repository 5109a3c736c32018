//! Redis, the secondary storage (Better Auth's `secondaryStorage`): a copy of the
//! sessions that checks read, and rate-limit counters shared by every process.
//!
//! Keys, under `kernia:`:
//! - `session:<sha256 of the token>`: the session and its user as JSON, the token left
//!   out (a copy of Redis holds no usable credential), expiring with the session;
//! - `user-sessions:<user id>`: the session keys copied for a user, so ending or changing
//!   the user drops them all;
//! - `generation`: bumped by every drop; a copy read from the database is stored only if
//!   it has not moved since the read began, so a copy cannot outlive a drop that raced it;
//! - `rate:<ip>|<path>`: `<count>:<last allowed request, ms>`, expiring with its window.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use crate::config::ConfigError;
use crate::crypto::sha256_b64url;
use crate::model::{session_and_user_from_json, Session, SessionAndUserJson, User, UserFields};

const GENERATION: &str = "kernia:generation";

/// Stores a copy read from the database, unless a drop happened since the read began.
const REMEMBER: &str = r"
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('SADD', KEYS[3], KEYS[2])
if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[3], ARGV[3]) end
return 1
";

/// Drops the copies of some users (KEYS[2..] are their sets) and of some sessions
/// (ARGV: session keys), and bumps the generation.
const FORGET: &str = r"
redis.call('INCR', KEYS[1])
for i = 2, #KEYS do
  for _, key in ipairs(redis.call('SMEMBERS', KEYS[i])) do redis.call('DEL', key) end
  redis.call('DEL', KEYS[i])
end
for _, key in ipairs(ARGV) do redis.call('DEL', key) end
return 1
";

/// Spec §12's bucket: -1 when allowed, else the last allowed request.
const RATE_LIMIT: &str = r"
local now, window, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('GET', KEYS[1])
if v then
  local sep = string.find(v, ':', 1, true)
  local count, last = tonumber(string.sub(v, 1, sep - 1)), tonumber(string.sub(v, sep + 1))
  if now - last < window then
    if count >= max then return last end
    redis.call('SET', KEYS[1], string.format('%d:%d', count + 1, now), 'PX', window)
    return -1
  end
end
redis.call('SET', KEYS[1], string.format('%d:%d', 1, now), 'PX', window)
return -1
";

/// What to drop from Redis for some writes: every copy of these users, and these sessions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Drops {
    pub users: Vec<String>,
    pub tokens: Vec<String>,
}

impl Drops {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.tokens.is_empty()
    }

    pub fn extend(&mut self, other: Drops) {
        self.users.extend(other.users);
        self.tokens.extend(other.tokens);
    }
}

pub struct Redis {
    conn: ConnectionManager,
    remember: Script,
    forget: Script,
    rate_limit: Script,
    /// Set from a failed command until a background probe reaches Redis again: meanwhile
    /// every command fails at once instead of waiting on a server that is away.
    down: Arc<AtomicBool>,
}

/// How often a probe tries Redis during an outage.
const PROBE_EVERY: Duration = Duration::from_millis(250);

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").finish_non_exhaustive()
    }
}

fn session_key(token: &str) -> String {
    format!("kernia:session:{}", sha256_b64url(token))
}

fn user_key(user_id: &str) -> String {
    format!("kernia:user-sessions:{user_id}")
}

/// Redis's error as text, for logs and 503 details.
pub type RedisFailure = String;

impl Redis {
    /// Connects to `url` (`redis://[user:password@]host[:port][/db]`); every command
    /// gives up after `timeout`. An unreachable server is refused here, as a database is.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Redis, ConfigError> {
        let refuse = |why: String| ConfigError::Invalid(format!("secondary_storage {}: {why}", redacted(url)));
        if !url.starts_with("redis://") {
            return Err(refuse("must be a redis:// URL such as redis://127.0.0.1:6379/0".into()));
        }
        let client = redis::Client::open(url).map_err(|e| refuse(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
            .set_number_of_retries(1)
            .set_max_delay(200);
        let mut conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| refuse(format!("cannot be reached: {e}")))?;
        let _: String =
            redis::cmd("PING").query_async(&mut conn).await.map_err(|e| refuse(format!("cannot be reached: {e}")))?;
        Ok(Redis {
            conn,
            remember: Script::new(REMEMBER),
            forget: Script::new(FORGET),
            rate_limit: Script::new(RATE_LIMIT),
            down: Arc::default(),
        })
    }

    /// A connection for one command, or the outage's error at once.
    fn connection(&self) -> Result<ConnectionManager, RedisFailure> {
        if self.down.load(Ordering::Relaxed) {
            return Err("Redis is unavailable (reconnecting)".into());
        }
        Ok(self.conn.clone())
    }

    /// A failed command starts an outage: logged once, and probed in the background
    /// until Redis answers again (logged too).
    fn seen<T>(&self, result: redis::RedisResult<T>) -> Result<T, RedisFailure> {
        result.map_err(|e| {
            if !self.down.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "kernia: Redis (secondary_storage) is unavailable: {e}; sessions are read from the \
                     database, and what would end or change a session answers 503 until it is back"
                );
                self.probe();
            }
            e.to_string()
        })
    }

    fn probe(&self) {
        let (down, conn) = (Arc::downgrade(&self.down), self.conn.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                // The engine is gone: nobody needs Redis any more.
                let Some(down) = down.upgrade() else { return };
                let mut conn = conn.clone();
                if redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok() {
                    down.store(false, Ordering::Relaxed);
                    eprintln!("kernia: Redis (secondary_storage) is available again");
                    return;
                }
            }
        });
    }

    /// The copy of the session of `token` and its user, if Redis holds one.
    pub async fn session(&self, token: &str) -> Result<Option<(Session, User)>, RedisFailure> {
        let mut conn = self.connection()?;
        let raw: Option<Vec<u8>> = self.seen(conn.get(session_key(token)).await)?;
        Ok(raw.and_then(|json| session_and_user_from_json(&json)).map(|(mut session, user)| {
            session.token = token.to_owned();
            (session, user)
        }))
    }

    /// The generation now: read before a database read whose answer is to be copied.
    pub async fn generation(&self) -> Result<String, RedisFailure> {
        let mut conn = self.connection()?;
        let value: Option<String> = self.seen(conn.get(GENERATION).await)?;
        Ok(value.unwrap_or_else(|| "0".into()))
    }

    /// Copies a live session read from the database at `generation`, for `ttl_ms`.
    pub async fn remember(
        &self,
        generation: &str,
        session: &Session,
        user: &User,
        ttl_ms: i64,
    ) -> Result<(), RedisFailure> {
        let tokenless = Session { token: String::new(), ..session.clone() };
        let value =
            serde_json::to_vec(&SessionAndUserJson(&tokenless, user, UserFields::ALL)).expect("the copy serializes");
        let mut conn = self.connection()?;
        let stored: redis::RedisResult<i64> = self
            .remember
            .key(GENERATION)
            .key(session_key(&session.token))
            .key(user_key(&session.user_id))
            .arg(generation)
            .arg(value)
            .arg(ttl_ms)
            .invoke_async(&mut conn)
            .await;
        self.seen(stored).map(|_| ())
    }

    /// Drops the copies of `drops`.
    pub async fn forget(&self, drops: &Drops) -> Result<(), RedisFailure> {
        let mut invocation = self.forget.key(GENERATION);
        for user in &drops.users {
            invocation.key(user_key(user));
        }
        for token in &drops.tokens {
            invocation.arg(session_key(token));
        }
        let mut conn = self.connection()?;
        let done: redis::RedisResult<i64> = invocation.invoke_async(&mut conn).await;
        self.seen(done).map(|_| ())
    }

    /// Counts a request against the bucket `key`: `None` when allowed, else the time of
    /// the bucket's last allowed request.
    pub async fn rate_limit(
        &self,
        key: &str,
        now_ms: i64,
        window_ms: i64,
        max: u64,
    ) -> Result<Option<i64>, RedisFailure> {
        let mut conn = self.connection()?;
        let last: redis::RedisResult<i64> = self
            .rate_limit
            .key(format!("kernia:rate:{key}"))
            .arg(now_ms)
            .arg(window_ms)
            .arg(max)
            .invoke_async(&mut conn)
            .await;
        self.seen(last).map(|last| (last >= 0).then_some(last))
    }
}

/// The URL with its password hidden, for messages.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(redacted("redis://:s3cret@host:6379/0"), "redis://:***@host:6379/0");
        assert_eq!(redacted("redis://me:s3cret@host"), "redis://me:***@host");
        assert_eq!(redacted("redis://host:6379"), "redis://host:6379");
    }
}
