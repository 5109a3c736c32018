//! Tokens kept in the `verification` table for mailed links (password reset,
//! account deletion): how an identifier is stored (`verification.store_identifier`),
//! and lookups that sweep expired rows on the way (at most once a minute, as
//! Better Auth's `findVerificationValue` does, unless `verification.disable_cleanup`).

use std::sync::atomic::Ordering;

use crate::auth::Auth;
use crate::config::StoreIdentifier;
use crate::error::AuthError;
use crate::model::Verification;
use crate::storage::WriteOp;

const SWEEP_EVERY_MS: i64 = 60_000;

/// The identifier as stored: as given, or base64url(SHA-256) with `store_identifier="hashed"`.
pub fn stored(auth: &Auth, identifier: &str) -> String {
    match auth.cfg.verification.store_identifier {
        StoreIdentifier::Plain => identifier.to_owned(),
        StoreIdentifier::Hashed => crate::crypto::sha256_b64url(identifier),
    }
}

/// A new row for `identifier` holding `value`, valid for `seconds`.
pub fn new_row(auth: &Auth, identifier: &str, value: &str, seconds: i64) -> Verification {
    let now = auth.clock.now_ms();
    Verification {
        id: crate::crypto::new_id(),
        identifier: stored(auth, identifier),
        value: value.to_owned(),
        expires_at: now + seconds * 1000,
        created_at: now,
        updated_at: now,
    }
}

/// The newest unexpired row of `identifier`.
pub async fn find(auth: &Auth, identifier: &str) -> Result<Option<Verification>, AuthError> {
    let now = auth.clock.now_ms();
    if !auth.cfg.verification.disable_cleanup {
        let last = auth.verifications_swept_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= SWEEP_EVERY_MS
            && auth.verifications_swept_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            auth.store.apply(vec![WriteOp::DeleteExpiredVerifications(now)]).await?;
        }
    }
    let row = auth.store.verification(&stored(auth, identifier)).await?;
    Ok(row.filter(|v| v.expires_at > now))
}
