//! Guest → real account: the after-hook on every endpoint that mints a session
//! while the request carries a guest's session (spec §7.3), whatever the sign-in
//! method. New methods get conversion by minting a session; nothing here knows them.
//!
//! Guarantees:
//! - **Atomic.** The endpoint's writes, everything `on_link` does through
//!   `ctx.db`, and the guest's deletion commit in one transaction. If `on_link`
//!   fails, none of it happened: no new account, the guest and its session as before.
//! - **Exactly once.** Conversions of one guest run one at a time (a per-guest lock
//!   in this process, the guest's rows locked in the database across processes),
//!   and each consumes the guest's session; a racing request finds it gone and
//!   becomes a plain sign-in.
//! - **Nobody waits on a slow `on_link`.** On SQLite, whose writer is global, the
//!   transaction opens only at `on_link`'s first `ctx.db` call or after it returns,
//!   so an `on_link` awaiting other things holds no lock.
//! - **Runs to the end.** The conversion is a task of its own: a client that goes
//!   away mid-conversion does not leave it half done.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::auth::Auth;
use crate::core::hooks::{CallbackRequest, LinkContext};
use crate::error::AuthError;
use crate::model::{Session, User};
use crate::storage::{GuestRef, SqlRow, SqlValue, Store, StoreError, Tx, WriteOp};

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Path prefixes whose endpoints convert a guest when they mint a session (spec §7.3).
pub const LINK_PREFIXES: &[&str] = &[
    "/sign-in",
    "/sign-up",
    "/callback",
    "/magic-link/verify",
    "/email-otp/verify-email",
    "/one-tap/callback",
    "/passkey/verify-authentication",
    "/phone-number/verify",
    "/verify-email",
];

pub fn converts(path: &str) -> bool {
    LINK_PREFIXES.iter().any(|p| path.starts_with(p))
}

/// A conversion to run: who the guest is and what the endpoint wants to commit.
pub struct Conversion {
    pub guest_session: Session,
    pub guest_user: User,
    pub new_user: User,
    pub writes: Vec<WriteOp>,
    pub request: CallbackRequest,
}

struct Slot {
    tx: Option<Box<dyn Tx>>,
    /// The endpoint's writes, applied when the transaction opens.
    pending: Option<Vec<WriteOp>>,
    /// Whether the guest's session was still there when the transaction opened.
    guest_present: bool,
    /// The endpoint's writes failed (say, an email taken meanwhile): the conversion is off.
    failed: Option<StoreError>,
}

struct Inner {
    store: Arc<dyn Store>,
    guest: GuestRef,
    closed: AtomicBool,
    slot: tokio::sync::Mutex<Slot>,
}

/// `ctx.db`: the auth database inside the conversion's transaction.
#[derive(Clone)]
pub struct LinkDb {
    inner: Arc<Inner>,
}

fn over() -> StoreError {
    StoreError::Sql("the conversion this database handle belonged to is over".into())
}

impl LinkDb {
    pub(crate) fn new(store: Arc<dyn Store>, writes: Vec<WriteOp>, guest: GuestRef) -> Self {
        let slot = Slot { tx: None, pending: Some(writes), guest_present: false, failed: None };
        LinkDb {
            inner: Arc::new(Inner {
                store,
                guest,
                closed: AtomicBool::new(false),
                slot: tokio::sync::Mutex::new(slot),
            }),
        }
    }

    /// `"sqlite"` or `"postgres"`: which SQL dialect `execute` and `fetch_all` speak.
    pub fn dialect(&self) -> &'static str {
        self.inner.store.dialect()
    }

    async fn open(&self, slot: &mut Slot) -> Result<(), StoreError> {
        if slot.tx.is_some() || slot.failed.is_some() {
            return Ok(());
        }
        let mut tx = self.inner.store.begin().await?;
        slot.guest_present = tx.lock_guest(&self.inner.guest).await?.is_some();
        if slot.guest_present {
            if let Some(writes) = slot.pending.take() {
                if let Err(e) = tx.apply(writes).await {
                    slot.failed = Some(e);
                    return Ok(());
                }
            }
        }
        slot.tx = Some(tx);
        Ok(())
    }

    async fn with_tx<T>(
        &self,
        f: impl for<'t> FnOnce(&'t mut Box<dyn Tx>) -> BoxFuture<'t, Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(over());
        }
        let mut slot = self.inner.slot.lock().await;
        self.open(&mut slot).await?;
        if slot.failed.is_some() {
            return Err(StoreError::Sql("the sign-in this conversion belongs to failed; nothing was written".into()));
        }
        match slot.tx.as_mut() {
            Some(tx) => f(tx).await,
            None => Err(over()),
        }
    }

    /// Runs a statement; returns the number of rows it changed.
    pub async fn execute(&self, sql: &str, params: Vec<SqlValue>) -> Result<u64, StoreError> {
        let sql = sql.to_owned();
        self.with_tx(move |tx| Box::pin(async move { tx.execute(&sql, params).await })).await
    }

    pub async fn fetch_all(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<SqlRow>, StoreError> {
        let sql = sql.to_owned();
        self.with_tx(move |tx| Box::pin(async move { tx.fetch_all(&sql, params).await })).await
    }

    /// Ends `ctx.db` for the app and hands the transaction (opened now if it was not yet) to the engine.
    async fn finish(&self) -> Result<Slot, StoreError> {
        self.inner.closed.store(true, Ordering::Release);
        let mut slot = self.inner.slot.lock().await;
        self.open(&mut slot).await?;
        Ok(std::mem::replace(&mut *slot, Slot { tx: None, pending: None, guest_present: false, failed: None }))
    }

    /// Ends `ctx.db`, applies `ops` and commits, if the guest is still what the
    /// transaction was opened for; `Ok(false)` (and a rollback) when it is not.
    pub(crate) async fn commit_with(&self, ops: Vec<WriteOp>) -> Result<bool, StoreError> {
        let slot = self.finish().await?;
        if let Some(e) = slot.failed {
            return Err(e);
        }
        match slot.tx.filter(|_| slot.guest_present) {
            Some(mut tx) => {
                tx.apply(ops).await?;
                tx.commit().await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Ends `ctx.db` and rolls back whatever it did.
    pub(crate) async fn abandon(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.slot.lock().await.tx.take();
    }
}

/// One async mutex per guest being converted, removed when nobody holds or awaits it.
#[derive(Default)]
pub struct GuestLocks {
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

pub struct GuestGuard<'a> {
    locks: &'a GuestLocks,
    id: String,
    mutex: Arc<tokio::sync::Mutex<()>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl GuestLocks {
    pub async fn lock(&self, id: &str) -> GuestGuard<'_> {
        let mutex = self.map.lock().expect("guest lock map").entry(id.to_owned()).or_default().clone();
        let guard = mutex.clone().lock_owned().await;
        GuestGuard { locks: self, id: id.to_owned(), mutex, guard: Some(guard) }
    }

    pub fn len(&self) -> usize {
        self.map.lock().expect("guest lock map").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for GuestGuard<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut map = self.locks.map.lock().expect("guest lock map");
        // The map's reference and ours: nobody else waits for this guest.
        if Arc::strong_count(&self.mutex) == 2 {
            map.remove(&self.id);
        }
    }
}

impl Auth {
    /// What happens to the guest after a conversion to `new_user`: deleted with its
    /// sessions and accounts, or, with deletion disabled, only the converted session
    /// consumed. Kept whole when the new user is the guest itself or another guest.
    fn cleanup(&self, c: &Conversion) -> Vec<WriteOp> {
        if c.new_user.id == c.guest_user.id || c.new_user.is_anonymous {
            return Vec::new();
        }
        let keep = self.cfg.anonymous.as_ref().is_some_and(|a| a.disable_delete_anonymous_user);
        if keep {
            vec![WriteOp::DeleteSessionByToken(c.guest_session.token.clone())]
        } else {
            vec![WriteOp::DeleteUser(c.guest_user.id.clone())]
        }
    }

    /// Commits the endpoint's writes and converts the guest; see the module docs.
    /// `Ok(false)`: a racing request converted the guest meanwhile, and this one
    /// became a plain sign-in.
    pub async fn convert(self: Arc<Self>, c: Conversion) -> Result<bool, StoreErrorOr> {
        let cleanup = self.cleanup(&c);
        let Some(callbacks) = self.anonymous_callbacks.clone().filter(|cb| cb.has_on_link()) else {
            // Nothing to await: one write-set, atomic on its own.
            let mut all = c.writes;
            all.extend(cleanup);
            self.store.apply(all).await?;
            return Ok(true);
        };

        let _guard = self.guest_locks.lock(&c.guest_user.id).await;
        // A conversion that finished while we waited has consumed the guest's session.
        if self.store.session_with_user(&c.guest_session.token).await?.is_none() {
            self.store.apply(c.writes).await?;
            return Ok(false);
        }
        let db = LinkDb::new(self.store.clone(), c.writes.clone(), GuestRef::Session(c.guest_session.token.clone()));
        if !self.store.single_writer() {
            // Row locks only block this guest's other conversions: take them up front.
            let mut slot = db.inner.slot.lock().await;
            db.open(&mut slot).await?;
            if let Some(e) = slot.failed.take() {
                return Err(e.into());
            }
            if !slot.guest_present {
                drop(slot);
                db.abandon().await;
                self.store.apply(c.writes).await?;
                return Ok(false);
            }
        }

        let ctx = LinkContext { request: c.request.clone(), db: db.clone() };
        let linked = callbacks.on_link(&c.guest_user, &c.new_user, ctx).await;
        if let Err(e) = linked {
            // The endpoint's own failure (say, a conflict) explains more than on_link's reaction to it.
            let failed = db.inner.slot.lock().await.failed.take();
            db.abandon().await;
            return Err(failed.map(StoreErrorOr::from).unwrap_or(StoreErrorOr::Auth(e)));
        }
        let slot = db.finish().await?;
        if let Some(e) = slot.failed {
            return Err(e.into());
        }
        let Some(mut tx) = slot.tx.filter(|_| slot.guest_present) else {
            // Converted by another process while on_link ran: keep the sign-in, drop the link.
            self.store.apply(c.writes).await?;
            return Ok(false);
        };
        tx.apply(cleanup).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// A conversion fails with a store error (mapped by the endpoint) or an app error.
#[derive(Debug)]
pub enum StoreErrorOr {
    Store(StoreError),
    Auth(AuthError),
}

impl From<StoreError> for StoreErrorOr {
    fn from(e: StoreError) -> Self {
        StoreErrorOr::Store(e)
    }
}
