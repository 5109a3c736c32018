//! The endpoints, one file per plugin (and one for sessions), each with its
//! route table. Every file has the same shape: parse and validate the body, check
//! credentials, stage the writes, mint the session. Nothing here commits: the
//! pipeline does, after the endpoint returns.

use crate::endpoint::RouteDef;

pub mod account;
pub mod anonymous;
pub mod change_email;
pub mod delete_user;
pub mod email;
pub mod email_otp;
pub mod magic_link;
pub mod passkey;
pub mod password_account;
pub mod password_reset;
pub mod session;
pub mod tokens;
pub mod username;
pub mod verification;

/// Every route the server knows; the router, the plugin switch and guest
/// conversion are derived from these tables.
pub const TABLES: &[&[RouteDef]] = &[
    session::ROUTES,
    email::ROUTES,
    account::ROUTES,
    verification::ROUTES,
    password_reset::ROUTES,
    change_email::ROUTES,
    delete_user::ROUTES,
    anonymous::ROUTES,
    username::ROUTES,
    magic_link::ROUTES,
    passkey::ROUTES,
    email_otp::ROUTES,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_route_per_method_and_path() {
        let mut seen = std::collections::HashSet::new();
        for def in TABLES.iter().flat_map(|t| t.iter()) {
            assert!(seen.insert((def.method, def.path)), "{} {} is declared twice", def.method, def.path);
            assert!(def.path.starts_with('/') && !def.path.ends_with('/'), "{}", def.path);
        }
    }
}
