//! The database with a copy of its sessions in Redis (`secondary_storage`): session
//! checks read Redis; everything else, and Redis's misses, the database, which stays
//! the source of truth for sessions as for users (guest conversion, cleanup and the
//! funnel are transactions on session rows).
//!
//! A session is copied when a check reads it from the database, at the generation
//! read before (see `redis.rs`). Writes that end or change sessions or users drop the
//! copies first (when Redis cannot be reached they fail with 503, nothing written, so
//! a revoked session never outlives its revocation in a copy) and again after the
//! commit (dropping a copy made in between). A refresh or an expired row only drops
//! after, as far as Redis can be reached: a copy that is out of date there is still
//! refused by its expiry. While Redis is away checks read the database and sign-ins
//! work as without it.

use std::sync::Arc;

use async_trait::async_trait;

use super::redis::{Drops, Redis};
use super::{GuestRef, GuestStats, Login, PasskeyBy, SqlRow, SqlValue, Store, StoreError, Tx, WriteOp};
use crate::model::{Account, Passkey, Session, User, Verification};

pub struct Mirrored {
    db: Arc<dyn Store>,
    redis: Arc<Redis>,
}

impl Mirrored {
    pub fn new(db: Arc<dyn Store>, redis: Arc<Redis>) -> Self {
        Mirrored { db, redis }
    }
}

/// The copies `ops` make wrong: those that must be dropped before the writes (a session
/// ended, a user changed or gone) and those dropped after as far as Redis can be reached.
fn drops_of(ops: &[WriteOp]) -> (Drops, Drops) {
    let (mut before, mut after) = (Drops::default(), Drops::default());
    for op in ops {
        match op {
            WriteOp::DeleteSessionByToken(token) | WriteOp::DeleteUserSession { token, .. } => {
                before.tokens.push(token.clone());
            }
            WriteOp::DeleteExpiredSession(token) | WriteOp::RefreshSession { token, .. } => {
                after.tokens.push(token.clone());
            }
            WriteOp::DeleteUser(user_id)
            | WriteOp::RevokeSessionsAndAccounts(user_id)
            | WriteOp::DeleteSessionsOfUser(user_id)
            | WriteOp::MarkEmailVerified { user_id, .. }
            | WriteOp::UpgradeAnonymous { user_id, .. }
            | WriteOp::RevokeOtherSessions { user_id, .. }
            | WriteOp::UpdateUser { user_id, .. }
            | WriteOp::DeleteOtherLiveSessions { user_id, .. }
            | WriteOp::UpdateEmail { user_id, .. } => before.users.push(user_id.clone()),
            WriteOp::InsertUser(_)
            | WriteOp::InsertAccount(_)
            | WriteOp::InsertSession(_)
            | WriteOp::InsertVerification(_)
            | WriteOp::ConsumeVerification(_)
            | WriteOp::DeleteVerification(_)
            | WriteOp::InsertPasskey(_)
            | WriteOp::UpdatePasskeyCounter { .. }
            | WriteOp::RenamePasskey { .. }
            | WriteOp::DeletePasskey(_)
            | WriteOp::SetPassword { .. }
            | WriteOp::DeleteAccount { .. }
            | WriteOp::DeleteExpiredVerifications(_)
            | WriteOp::GuestEnded { .. } => {}
        }
    }
    (before, after)
}

/// Drops that must happen before a write: when Redis is away, the write does not happen.
async fn drop_before(redis: &Redis, drops: &Drops) -> Result<(), StoreError> {
    if drops.is_empty() {
        return Ok(());
    }
    redis.forget(drops).await.map_err(StoreError::SecondaryUnavailable)
}

/// Drops after a commit, as far as Redis can be reached (its outage is logged).
async fn drop_after(redis: &Redis, drops: &Drops) {
    if !drops.is_empty() {
        let _ = redis.forget(drops).await;
    }
}

/// Milliseconds of wall time until `expires_at`.
fn ttl_ms(expires_at: i64) -> i64 {
    expires_at - chrono::Utc::now().timestamp_millis()
}

#[async_trait]
impl Store for Mirrored {
    async fn session_with_user(&self, token: &str) -> Result<Option<(Session, User)>, StoreError> {
        let generation = match self.redis.session(token).await {
            Ok(Some(found)) => return Ok(Some(found)),
            Ok(None) => self.redis.generation().await.ok(),
            Err(_) => None,
        };
        let found = self.db.session_with_user(token).await?;
        if let (Some(generation), Some((session, user))) = (generation, &found) {
            let ttl = ttl_ms(session.expires_at);
            if ttl > 0 {
                let _ = self.redis.remember(&generation, session, user, ttl).await;
            }
        }
        Ok(found)
    }

    async fn user_with_password(&self, by: Login, key: &str) -> Result<Option<(User, Option<String>)>, StoreError> {
        self.db.user_with_password(by, key).await
    }

    async fn verification(&self, identifier: &str) -> Result<Option<Verification>, StoreError> {
        self.db.verification(identifier).await
    }

    async fn user(&self, by: Login, key: &str) -> Result<Option<User>, StoreError> {
        self.db.user(by, key).await
    }

    async fn passkeys(&self, user_id: &str) -> Result<Vec<Passkey>, StoreError> {
        self.db.passkeys(user_id).await
    }

    async fn sessions_of_user(&self, user_id: &str) -> Result<Vec<Session>, StoreError> {
        self.db.sessions_of_user(user_id).await
    }

    async fn accounts_of_user(&self, user_id: &str) -> Result<Vec<Account>, StoreError> {
        self.db.accounts_of_user(user_id).await
    }

    async fn passkey(&self, by: PasskeyBy, key: &str) -> Result<Option<Passkey>, StoreError> {
        self.db.passkey(by, key).await
    }

    async fn apply(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        let (mut before, after) = drops_of(&ops);
        drop_before(&self.redis, &before).await?;
        self.db.apply(ops).await?;
        before.extend(after);
        drop_after(&self.redis, &before).await;
        Ok(())
    }

    async fn rate_limit(&self, key: &str, now_ms: i64, window_ms: i64, max: u64) -> Result<Option<i64>, StoreError> {
        self.db.rate_limit(key, now_ms, window_ms, max).await
    }

    async fn prune_rate_limits(&self, before_ms: i64) -> Result<(), StoreError> {
        self.db.prune_rate_limits(before_ms).await
    }

    async fn stale_guests(&self, cutoff_ms: i64, after: Option<String>, limit: usize) -> Result<Vec<User>, StoreError> {
        self.db.stale_guests(cutoff_ms, after, limit).await
    }

    async fn delete_stale_guests(
        &self,
        ids: Vec<String>,
        cutoff_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let drops = Drops { users: ids.clone(), tokens: Vec::new() };
        drop_before(&self.redis, &drops).await?;
        let deleted = self.db.delete_stale_guests(ids, cutoff_ms, now_ms).await?;
        drop_after(&self.redis, &drops).await;
        Ok(deleted)
    }

    async fn list_users(&self, anonymous: Option<bool>, limit: u64, offset: u64) -> Result<Vec<User>, StoreError> {
        self.db.list_users(anonymous, limit, offset).await
    }

    async fn count_users(&self, anonymous: Option<bool>) -> Result<u64, StoreError> {
        self.db.count_users(anonymous).await
    }

    async fn guest_stats(&self, since_ms: Option<i64>, now_ms: i64) -> Result<GuestStats, StoreError> {
        self.db.guest_stats(since_ms, now_ms).await
    }

    async fn begin(&self) -> Result<Box<dyn Tx>, StoreError> {
        let inner = self.db.begin().await?;
        Ok(Box::new(MirroredTx { inner, redis: self.redis.clone(), dropped: Drops::default() }))
    }

    async fn read_sql(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<SqlRow>, StoreError> {
        self.db.read_sql(sql, params).await
    }

    fn single_writer(&self) -> bool {
        self.db.single_writer()
    }

    async fn close(&self) {
        self.db.close().await;
    }

    fn dialect(&self) -> &'static str {
        self.db.dialect()
    }
}

/// A transaction whose writes drop their copies as [`Mirrored::apply`] does: before
/// each write, and all again after the commit.
struct MirroredTx {
    inner: Box<dyn Tx>,
    redis: Arc<Redis>,
    dropped: Drops,
}

#[async_trait]
impl Tx for MirroredTx {
    async fn apply(&mut self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        let (before, after) = drops_of(&ops);
        drop_before(&self.redis, &before).await?;
        self.inner.apply(ops).await?;
        self.dropped.extend(before);
        self.dropped.extend(after);
        Ok(())
    }

    async fn lock_guest(&mut self, guest: &GuestRef) -> Result<Option<User>, StoreError> {
        self.inner.lock_guest(guest).await
    }

    async fn execute(&mut self, sql: &str, params: Vec<SqlValue>) -> Result<u64, StoreError> {
        self.inner.execute(sql, params).await
    }

    async fn fetch_all(&mut self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<SqlRow>, StoreError> {
        self.inner.fetch_all(sql, params).await
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let MirroredTx { inner, redis, dropped } = *self;
        inner.commit().await?;
        drop_after(&redis, &dropped).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ending_or_changing_sessions_and_users_drops_their_copies_first() {
        let ops = vec![
            WriteOp::DeleteSessionByToken("t1".into()),
            WriteOp::DeleteExpiredSession("t2".into()),
            WriteOp::RefreshSession { id: "s".into(), token: "t3".into(), expires_at: 1, updated_at: 1 },
            WriteOp::DeleteUser("u1".into()),
            WriteOp::UpdateUser {
                user_id: "u2".into(),
                updated_at: 1,
                name: None,
                image: None,
                username: None,
                display_username: None,
            },
            WriteOp::DeleteVerification("v".into()),
        ];
        let (before, after) = drops_of(&ops);
        assert_eq!(before, Drops { users: vec!["u1".into(), "u2".into()], tokens: vec!["t1".into()] });
        assert_eq!(after, Drops { users: vec![], tokens: vec!["t2".into(), "t3".into()] });
    }
}
