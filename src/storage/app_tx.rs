//! `auth.db`: the app's own SQL on the auth database, outside any sign-in. One
//! statement commits on its own; a transaction holds several, committed together
//! or rolled back. The transaction opens at its first statement, so an app
//! transaction that never runs SQL holds nothing (on SQLite an open transaction
//! holds the one writer, so every sign-in waits for it: keep them short).

use std::sync::Arc;

use async_trait::async_trait;

use super::{AppSql, SqlRow, SqlValue, Store, StoreError, Tx};

enum State {
    NotBegun,
    Open(Box<dyn Tx>),
    Over,
}

pub struct AppTx {
    store: Arc<dyn Store>,
    state: tokio::sync::Mutex<State>,
}

fn over() -> StoreError {
    StoreError::Sql("this transaction is over (committed or rolled back)".into())
}

impl AppTx {
    pub fn new(store: Arc<dyn Store>) -> Self {
        AppTx { store, state: tokio::sync::Mutex::new(State::NotBegun) }
    }

    async fn open<'s>(&self, state: &'s mut State) -> Result<&'s mut Box<dyn Tx>, StoreError> {
        if let State::NotBegun = state {
            *state = State::Open(self.store.begin().await?);
        }
        match state {
            State::Open(tx) => Ok(tx),
            _ => Err(over()),
        }
    }

    pub async fn commit(&self) -> Result<(), StoreError> {
        let mut state = self.state.lock().await;
        match std::mem::replace(&mut *state, State::Over) {
            State::Open(tx) => tx.commit().await,
            State::NotBegun => Ok(()),
            State::Over => Err(over()),
        }
    }

    /// Undoes every statement of the transaction; nothing to do if it is over.
    pub async fn rollback(&self) {
        // Dropping an open transaction rolls it back.
        drop(std::mem::replace(&mut *self.state.lock().await, State::Over));
    }
}

#[async_trait]
impl AppSql for AppTx {
    fn dialect(&self) -> &'static str {
        self.store.dialect()
    }

    /// Runs a statement in the transaction; returns the rows it changed.
    async fn execute(&self, sql: &str, params: Vec<SqlValue>) -> Result<u64, StoreError> {
        let mut state = self.state.lock().await;
        self.open(&mut state).await?.execute(sql, params).await
    }

    async fn fetch_all(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<SqlRow>, StoreError> {
        let mut state = self.state.lock().await;
        self.open(&mut state).await?.fetch_all(sql, params).await
    }
}

/// The whole database, a statement at a time: each write commits on its own,
/// reads run beside the engine's writer.
pub struct Autocommit(pub Arc<dyn Store>);

#[async_trait]
impl AppSql for Autocommit {
    fn dialect(&self) -> &'static str {
        self.0.dialect()
    }

    async fn execute(&self, sql: &str, params: Vec<SqlValue>) -> Result<u64, StoreError> {
        let tx = AppTx::new(self.0.clone());
        let changed = tx.execute(sql, params).await?;
        tx.commit().await?;
        Ok(changed)
    }

    async fn fetch_all(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<SqlRow>, StoreError> {
        self.0.read_sql(sql, params).await
    }
}
