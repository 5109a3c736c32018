//! The engine's own log lines, on standard error with a `kernia:` prefix.
//! Debug lines (why a passkey ceremony failed, and the like) appear only with
//! `KERNIA_LOG=debug` in the environment; they never hold secrets.

use std::sync::OnceLock;

fn debug_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("KERNIA_LOG").is_ok_and(|v| v.eq_ignore_ascii_case("debug")))
}

pub fn debug(message: std::fmt::Arguments<'_>) {
    if debug_enabled() {
        eprintln!("kernia: debug: {message}");
    }
}

/// A line the operator should see: something is served less well than configured.
pub fn warn(message: std::fmt::Arguments<'_>) {
    eprintln!("kernia: warning: {message}");
}
