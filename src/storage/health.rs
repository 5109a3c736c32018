//! Episodes of an unavailable database. The first failure of an episode is logged
//! with its cause; requests meanwhile answer 503 without a log line each. The
//! episode ends once the database has been quiet for a while (no request failed
//! for [`QUIET`]) and a probe write succeeds, and that is logged too. The quiet
//! period keeps a database that fails now and then (a nearly full disk takes some
//! writes, refuses others) to one episode instead of a line per flicker.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{Store, StoreError};

const PROBE_EVERY: Duration = Duration::from_secs(1);
const QUIET: Duration = Duration::from_secs(5);
/// The rate-limit bucket the probe writes (pruned like any other).
const PROBE_KEY: &str = "kernia:health-probe";

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[derive(Default)]
pub struct Health {
    down: AtomicBool,
    last_failure_ms: AtomicI64,
}

impl Health {
    /// Records a failure; the first of an episode is logged and starts the probe.
    pub fn failed(self: &Arc<Self>, store: &Arc<dyn Store>, detail: &str) {
        self.last_failure_ms.store(now_ms(), Ordering::Release);
        if self.down.swap(true, Ordering::AcqRel) {
            return;
        }
        eprintln!("kernia: the database is unavailable, answering 503 until it is back: {detail}");
        let (health, store) = (self.clone(), store.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                let quiet_for = now_ms() - health.last_failure_ms.load(Ordering::Acquire);
                if quiet_for < QUIET.as_millis() as i64 {
                    continue;
                }
                // A write, since reads may work while writes cannot (a full disk): a
                // limit it never reaches, so the bucket's row is written every time.
                match store.rate_limit(PROBE_KEY, now_ms(), 1_000, i32::MAX as u64).await {
                    Err(StoreError::Unavailable(_)) => continue,
                    // Reachable, if unhappy about something else: back as far as this is concerned.
                    Ok(_) | Err(_) => break,
                }
            }
            health.down.store(false, Ordering::Release);
            eprintln!("kernia: the database is available again");
        });
    }
}
