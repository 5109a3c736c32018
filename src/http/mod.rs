//! HTTP as the engine sees it, whatever the transport: a [`request::Request`]
//! goes in, a [`response::Response`] comes out; bodies are parsed and URLs and
//! origins checked here. The ASGI adapter and the native server only convert.

pub mod body;
pub mod cors;
pub mod origin;
pub mod request;
pub mod response;
