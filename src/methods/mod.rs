//! Sign-in methods, one file each, same shape: parse and validate the body,
//! check credentials, stage the writes, mint the session.

pub mod anonymous;
pub mod email;
pub mod magic_link;
pub mod passkey;
pub mod username;
