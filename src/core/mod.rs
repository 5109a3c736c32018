//! The transport-neutral core: a [`request::Request`] goes in, a
//! [`response::Response`] comes out. The ASGI adapter and the native server only convert.

pub mod body;
pub mod handler;
pub mod hooks;
pub mod origin;
pub mod request;
pub mod response;
pub mod router;
