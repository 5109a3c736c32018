//! Episodes of an unavailable database: the first failure of an episode is logged
//! with its cause, then one probe a second watches for the database to come back,
//! and that is logged too. Requests meanwhile answer 503 without a log line each.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::Store;

const PROBE_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Health {
    down: AtomicBool,
}

impl Health {
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// Records a failure; the first of an episode is logged and starts the probe.
    pub fn failed(self: &Arc<Self>, store: &Arc<dyn Store>, detail: &str) {
        if self.down.swap(true, Ordering::AcqRel) {
            return;
        }
        eprintln!("kernia: the database is unavailable, answering 503 until it is back: {detail}");
        let (health, store) = (self.clone(), store.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                // The cheapest lookup there is: one probe of a unique index.
                match store.verification("").await {
                    Ok(_) => break,
                    Err(super::StoreError::Unavailable(_)) => continue,
                    // Reachable, if unhappy about something else: back as far as this is concerned.
                    Err(_) => break,
                }
            }
            health.down.store(false, Ordering::Release);
            eprintln!("kernia: the database is available again");
        });
    }
}
