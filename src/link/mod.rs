//! Guest → real account: what the pipeline runs after every route that mints a
//! session (`signs_in` in its table) while the request carries a guest's
//! session (spec §7.3), whatever the sign-in method. Nothing here knows the methods.
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
use std::sync::{Arc, Mutex};

use crate::callbacks::{AnonymousCallbacks, CallbackRequest, LinkContext};
use crate::error::AuthError;
use crate::model::{Session, User};
use crate::storage::conversion_db::{ConversionDb, Opened};
use crate::storage::{GuestOutcome, GuestRef, Store, StoreError, WriteOp};

/// A conversion to run: who the guest is and what the endpoint wants to commit.
pub struct Conversion {
    pub guest_session: Session,
    pub guest_user: User,
    pub new_user: User,
    pub writes: Vec<WriteOp>,
    pub request: CallbackRequest,
    /// The sign-in method (the route's `signs_in`), for the guest funnel.
    pub method: &'static str,
    pub at_ms: i64,
}

/// Runs conversions; the engine owns one.
pub struct Linker {
    store: Arc<dyn Store>,
    /// The anonymous plugin's callbacks, when it has an `on_link`.
    on_link: Option<Arc<dyn AnonymousCallbacks>>,
    /// `anonymous(disable_delete_anonymous_user=True)`: a converted guest is kept.
    keep_guest: bool,
    pub locks: GuestLocks,
}

impl Linker {
    pub fn new(store: Arc<dyn Store>, callbacks: Option<Arc<dyn AnonymousCallbacks>>, keep_guest: bool) -> Self {
        let on_link = callbacks.filter(|cb| cb.has_on_link());
        Linker { store, on_link, keep_guest, locks: GuestLocks::default() }
    }

    /// What happens to the guest after a conversion to `new_user`: deleted with its
    /// sessions and accounts, or, with deletion disabled, only the converted session
    /// consumed. Kept whole when the new user is the guest itself or another guest.
    fn guest_writes(&self, c: &Conversion) -> Vec<WriteOp> {
        if c.new_user.id == c.guest_user.id || c.new_user.is_anonymous {
            return Vec::new();
        }
        let converted = WriteOp::GuestEnded {
            id: c.guest_user.id.clone(),
            created_ms: c.guest_user.created_at,
            outcome: GuestOutcome::Converted,
            method: Some(c.method),
            at_ms: c.at_ms,
        };
        if self.keep_guest {
            vec![WriteOp::DeleteSessionByToken(c.guest_session.token.clone()), converted]
        } else {
            vec![WriteOp::DeleteUser(c.guest_user.id.clone()), converted]
        }
    }

    /// Commits the endpoint's writes and converts the guest; see the module docs.
    /// `Ok(false)`: a racing request converted the guest meanwhile, and this one
    /// became a plain sign-in.
    pub async fn convert(self: Arc<Self>, c: Conversion) -> Result<bool, StoreErrorOr> {
        let cleanup = self.guest_writes(&c);
        let Some(callbacks) = self.on_link.clone() else {
            // Nothing to await: one write-set, atomic on its own.
            let mut all = c.writes;
            all.extend(cleanup);
            self.store.apply(all).await?;
            return Ok(true);
        };

        let _guard = self.locks.lock(&c.guest_user.id).await;
        // A conversion that finished while we waited has consumed the guest's session.
        if self.store.session_with_user(&c.guest_session.token).await?.is_none() {
            self.store.apply(c.writes).await?;
            return Ok(false);
        }
        let guest = GuestRef::Session(c.guest_session.token.clone());
        let db = ConversionDb::new(self.store.clone(), c.writes.clone(), guest);
        if !self.store.single_writer() {
            // Row locks only block this guest's other conversions: take them up front.
            match db.open_now().await? {
                Opened::Ready => {}
                Opened::Failed(e) => return Err(e.into()),
                Opened::GuestGone => {
                    self.store.apply(c.writes).await?;
                    return Ok(false);
                }
            }
        }

        let ctx = LinkContext { request: c.request.clone(), db: db.clone() };
        if let Err(e) = callbacks.on_link(&c.guest_user, &c.new_user, ctx).await {
            // The endpoint's own failure (say, a conflict) explains more than on_link's reaction to it.
            let failed = db.abandon().await;
            return Err(failed.map(StoreErrorOr::from).unwrap_or(StoreErrorOr::Auth(e)));
        }
        if !db.commit_with(cleanup).await? {
            // Converted by another process while on_link ran: keep the sign-in, drop the link.
            self.store.apply(c.writes).await?;
            return Ok(false);
        }
        Ok(true)
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
