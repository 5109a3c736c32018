//! kernia-rs: a guest-session authentication server that speaks the Better Auth
//! HTTP protocol, with Kernia's Python API on top.

// Layers, from the bottom up; a module imports only from layers below it
// (docs/ARCHITECTURE.md, checked by tests/python/test_layers.py).
// 1. foundations
pub mod crypto;
pub mod error;
pub mod log;
pub mod model;
pub mod net;
pub mod password;
pub mod time;
pub mod webauthn_eddsa;
pub mod weburl;
// 2. configuration, 3. storage
pub mod config;
pub mod storage;
// 4. HTTP values and trust checks
pub mod http;
// 5. services the engine owns
pub mod callbacks;
pub mod link;
pub mod metrics;
pub mod ratelimit;
pub mod session;
// 6. the engine
pub mod auth;
// 7. endpoints and their route tables
pub mod endpoint;
pub mod routes;
// 8. serving: the pipeline, stale-guest cleanup, server-side calls, the native server, the bindings
pub mod admin;
pub mod cleanup;
pub mod pipeline;
pub mod server;

#[cfg(feature = "python")]
mod bindings;

pub use auth::Auth;
pub use config::{Config, ConfigError};
pub use error::AuthError;
pub use http::request::Request;
pub use http::response::Response;
