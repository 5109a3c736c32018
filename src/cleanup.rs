//! Stale-guest cleanup (`anonymous(max_age=...)`): guests whose last activity
//! (their user row or any of their sessions updated) is older than `max_age` are
//! deleted with their sessions, accounts and passkeys.
//!
//! In batches, each its own short transaction, so sign-ins keep flowing: on
//! SQLite the writer interleaves requests' group commits between batches; on
//! PostgreSQL the batch locks only the guests it deletes, skipping any that a
//! conversion holds. Every batch re-checks staleness in its transaction, so a
//! guest that came back meanwhile is kept.

use serde::Serialize;

use crate::auth::Auth;
use crate::callbacks::{CallbackRequest, EventKind, EventOrigin, Extension, LinkContext};
use crate::error::AuthError;
use crate::model::User;
use crate::storage::conversion_db::ConversionDb;
use crate::storage::{GuestOutcome, GuestRef, WriteOp};

/// What a cleanup did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CleanupReport {
    /// Stale guests found.
    pub stale: u64,
    /// Deleted, or in a dry run those that would have been.
    pub deleted: u64,
    /// Kept: `should_delete` said no, or the guest came back meanwhile.
    pub kept: u64,
    /// Kept because `should_delete` or `before_delete` raised (logged).
    pub failed: u64,
    pub dry_run: bool,
}

#[derive(Clone)]
pub struct CleanupOptions {
    pub dry_run: bool,
    pub batch_size: usize,
    /// Overrides `anonymous(max_age=...)`, in seconds.
    pub max_age: Option<i64>,
    /// The event loop the app's hooks run on.
    pub extension: Extension,
}

impl Auth {
    /// Deletes stale guests; see the module docs.
    pub async fn cleanup_anonymous_users(&self, o: CleanupOptions) -> Result<CleanupReport, AuthError> {
        let Some(cb) = self.anonymous_callbacks.clone() else {
            return Err(AuthError::Validation("the anonymous plugin is not configured".into()));
        };
        let max_age = o.max_age.or(self.cfg.anonymous.as_ref().and_then(|a| a.max_age)).ok_or_else(|| {
            AuthError::Validation("no max_age: configure anonymous(max_age=...) or pass max_age".into())
        })?;
        if max_age <= 0 || o.batch_size == 0 {
            return Err(AuthError::Validation("max_age and batch_size must be positive".into()));
        }
        let cutoff_ms = self.clock.now_ms() - max_age * 1000;
        let request = CallbackRequest::internal(o.extension.clone());
        let mut report = CleanupReport { dry_run: o.dry_run, ..CleanupReport::default() };
        let mut after = None;
        loop {
            let batch = self.store.stale_guests(cutoff_ms, after.clone(), o.batch_size).await?;
            let Some(last) = batch.last() else { break };
            after = Some(last.id.clone());
            report.stale += batch.len() as u64;
            let mut doomed: Vec<User> = Vec::with_capacity(batch.len());
            for user in batch {
                if cb.has_should_delete() {
                    match cb.should_delete(&user, &request).await {
                        Ok(true) => {}
                        Ok(false) => {
                            report.kept += 1;
                            continue;
                        }
                        Err(_) => {
                            report.failed += 1;
                            continue;
                        }
                    }
                }
                doomed.push(user);
            }
            if o.dry_run {
                report.deleted += doomed.len() as u64;
                continue;
            }
            let gone = if cb.has_before_delete() {
                let mut gone = Vec::new();
                for user in doomed {
                    let db = ConversionDb::new(
                        self.store.clone(),
                        Vec::new(),
                        GuestRef::Stale { id: user.id.clone(), cutoff_ms },
                    );
                    let ctx = LinkContext { request: request.clone(), db: db.clone() };
                    if cb.before_delete(&user, ctx).await.is_err() {
                        db.abandon().await;
                        report.failed += 1;
                        continue;
                    }
                    let ended = WriteOp::GuestEnded {
                        id: user.id.clone(),
                        created_ms: user.created_at,
                        outcome: GuestOutcome::CleanedUp,
                        method: None,
                        at_ms: self.clock.now_ms(),
                    };
                    match db.commit_with(vec![WriteOp::DeleteUser(user.id.clone()), ended]).await {
                        Ok(true) => gone.push(user.id),
                        Ok(false) => report.kept += 1,
                        // Redis is away: no guest can go now; the next sweep tries again.
                        Err(e @ crate::storage::StoreError::SecondaryUnavailable(_)) => return Err(e.into()),
                        Err(e) => {
                            eprintln!("kernia: cleanup could not delete guest {}: {e}", user.id);
                            report.failed += 1;
                        }
                    }
                }
                gone
            } else {
                let ids: Vec<String> = doomed.into_iter().map(|u| u.id).collect();
                let asked = ids.len();
                let gone = self.store.delete_stale_guests(ids, cutoff_ms, self.clock.now_ms()).await?;
                report.kept += (asked - gone.len()) as u64;
                gone
            };
            report.deleted += gone.len() as u64;
            let from = EventOrigin { ip: None, path: None, extension: &o.extension };
            for id in &gone {
                self.emit(EventKind::CleanedUp, Some(id), None, &from);
            }
            tokio::task::yield_now().await;
        }
        Ok(report)
    }
}
