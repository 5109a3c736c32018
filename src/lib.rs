//! kernia-rs: a guest-session authentication server that speaks the Better Auth
//! HTTP protocol, with Kernia's Python API on top.

pub mod auth;
pub mod cleanup;
pub mod config;
pub mod core;
pub mod crypto;
pub mod error;
pub mod link;
pub mod log;
pub mod methods;
pub mod model;
pub mod net;
pub mod password;
pub mod ratelimit;
pub mod server;
pub mod session;
pub mod storage;
pub mod time;
pub mod webauthn_eddsa;
pub mod weburl;

#[cfg(feature = "python")]
mod bindings;

pub use auth::Auth;
pub use config::{Config, ConfigError};
pub use core::request::Request;
pub use core::response::Response;
pub use error::AuthError;
