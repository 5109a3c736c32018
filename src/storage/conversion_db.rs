//! `ctx.db` of `on_link` and `before_delete`: the auth database inside the
//! transaction of a guest's conversion or deletion. The transaction opens at the
//! first statement (or when the engine asks), locking the guest's rows first; the
//! engine then applies its own writes and commits, or rolls everything back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use super::{AppSql, GuestRef, SqlRow, SqlValue, Store, StoreError, Tx, WriteOp};

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

struct TxState {
    tx: Option<Box<dyn Tx>>,
    /// The endpoint's writes, applied when the transaction opens.
    pending: Option<Vec<WriteOp>>,
    /// Whether the guest was still there when the transaction opened.
    guest_present: bool,
    /// The endpoint's writes failed (say, an email taken meanwhile): the conversion is off.
    failed: Option<StoreError>,
}

impl TxState {
    fn empty() -> Self {
        TxState { tx: None, pending: None, guest_present: false, failed: None }
    }
}

struct Inner {
    store: Arc<dyn Store>,
    guest: GuestRef,
    closed: AtomicBool,
    slot: tokio::sync::Mutex<TxState>,
}

/// The state of the transaction once it is open.
pub enum Opened {
    /// The guest is locked and the endpoint's writes applied.
    Ready,
    /// The guest was gone (converted or deleted meanwhile); nothing applied.
    GuestGone,
    /// The endpoint's writes failed.
    Failed(StoreError),
}

/// The auth database inside a conversion's (or a stale guest's deletion's) transaction.
#[derive(Clone)]
pub struct ConversionDb {
    inner: Arc<Inner>,
}

fn over() -> StoreError {
    StoreError::Sql("the conversion this database handle belonged to is over".into())
}

impl ConversionDb {
    /// `writes` are applied first when the transaction opens, if `guest` is still there.
    pub fn new(store: Arc<dyn Store>, writes: Vec<WriteOp>, guest: GuestRef) -> Self {
        let slot = TxState { pending: Some(writes), ..TxState::empty() };
        ConversionDb {
            inner: Arc::new(Inner {
                store,
                guest,
                closed: AtomicBool::new(false),
                slot: tokio::sync::Mutex::new(slot),
            }),
        }
    }

    async fn open(&self, slot: &mut TxState) -> Result<(), StoreError> {
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

    /// Opens the transaction now (row locks taken up front); an error or a missing
    /// guest ends this handle.
    pub async fn open_now(&self) -> Result<Opened, StoreError> {
        let mut slot = self.inner.slot.lock().await;
        self.open(&mut slot).await?;
        if let Some(e) = slot.failed.take() {
            drop(slot);
            self.abandon().await;
            return Ok(Opened::Failed(e));
        }
        if !slot.guest_present {
            drop(slot);
            self.abandon().await;
            return Ok(Opened::GuestGone);
        }
        Ok(Opened::Ready)
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

    /// Ends the handle for the app, then applies `ops` and commits (opening the
    /// transaction now if the app never did) if the guest is still what the
    /// transaction was opened for; `Ok(false)` (and a rollback) when it is not.
    /// The endpoint's own failure comes back as the error.
    pub async fn commit_with(&self, ops: Vec<WriteOp>) -> Result<bool, StoreError> {
        self.inner.closed.store(true, Ordering::Release);
        let mut slot = self.inner.slot.lock().await;
        self.open(&mut slot).await?;
        let slot = std::mem::replace(&mut *slot, TxState::empty());
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

    /// Ends the handle and rolls back whatever it did; the endpoint's own failure,
    /// if its writes failed.
    pub async fn abandon(&self) -> Option<StoreError> {
        self.inner.closed.store(true, Ordering::Release);
        let mut slot = self.inner.slot.lock().await;
        slot.tx.take();
        slot.failed.take()
    }
}

#[async_trait]
impl AppSql for ConversionDb {
    fn dialect(&self) -> &'static str {
        self.inner.store.dialect()
    }

    async fn execute(&self, sql: &str, params: Vec<SqlValue>) -> Result<u64, StoreError> {
        let sql = sql.to_owned();
        self.with_tx(move |tx| Box::pin(async move { tx.execute(&sql, params).await })).await
    }

    async fn fetch_all(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<SqlRow>, StoreError> {
        let sql = sql.to_owned();
        self.with_tx(move |tx| Box::pin(async move { tx.fetch_all(&sql, params).await })).await
    }
}
