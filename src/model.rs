//! Rows of Better Auth's schema (spec §4) and their JSON form.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde::Deserialize;

use crate::time::{iso, parse_iso};

#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: String,
    pub email_verified: bool,
    pub image: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub is_anonymous: bool,
    pub username: Option<String>,
    pub display_username: Option<String>,
}

impl User {
    /// A user created now: not verified, no image, no username.
    pub fn new(id: String, name: String, email: String, is_anonymous: bool, now: i64) -> User {
        User {
            id,
            name,
            email,
            email_verified: false,
            image: None,
            created_at: now,
            updated_at: now,
            is_anonymous,
            username: None,
            display_username: None,
        }
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User").field("id", &self.id).field("is_anonymous", &self.is_anonymous).finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub token: String,
    pub user_id: String,
    pub expires_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

impl std::fmt::Debug for Session {
    // The token is a bearer credential: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("id", &self.id).field("user_id", &self.user_id).finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct Account {
    pub id: String,
    pub account_id: String,
    pub provider_id: String,
    pub user_id: String,
    pub password: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Granted OAuth scopes, comma-separated (social accounts only).
    pub scope: Option<String>,
}

impl Account {
    /// The email-and-password credential of `user_id`, holding `hash`.
    pub fn credential(user_id: &str, hash: String, now: i64) -> Account {
        Account {
            id: crate::crypto::new_id(),
            account_id: user_id.to_owned(),
            provider_id: "credential".into(),
            user_id: user_id.to_owned(),
            password: Some(hash),
            created_at: now,
            updated_at: now,
            scope: None,
        }
    }
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account").field("id", &self.id).field("provider_id", &self.provider_id).finish_non_exhaustive()
    }
}

/// A row of the `verification` table: single-use values such as magic-link tokens.
#[derive(Clone)]
pub struct Verification {
    pub id: String,
    pub identifier: String,
    pub value: String,
    pub expires_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for Verification {
    // The identifier may be a live token: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verification").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Which plugin columns appear in user JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserFields {
    pub anonymous: bool,
    pub username: bool,
}

impl UserFields {
    /// Every plugin column, whichever plugins are on.
    pub const ALL: UserFields = UserFields { anonymous: true, username: true };
}

/// A user as the client sees it: every returned column, plugin columns only when their plugin is on.
pub struct UserJson<'a>(pub &'a User, pub UserFields);

impl Serialize for UserJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (u, f) = (self.0, self.1);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &u.id)?;
        m.serialize_entry("name", &u.name)?;
        m.serialize_entry("email", &u.email)?;
        m.serialize_entry("emailVerified", &u.email_verified)?;
        m.serialize_entry("image", &u.image)?;
        m.serialize_entry("createdAt", &iso(u.created_at))?;
        m.serialize_entry("updatedAt", &iso(u.updated_at))?;
        if f.anonymous {
            m.serialize_entry("isAnonymous", &u.is_anonymous)?;
        }
        if f.username {
            m.serialize_entry("username", &u.username)?;
            m.serialize_entry("displayUsername", &u.display_username)?;
        }
        m.end()
    }
}

pub struct SessionJson<'a>(pub &'a Session);

impl Serialize for SessionJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let x = self.0;
        let mut m = s.serialize_map(Some(8))?;
        m.serialize_entry("id", &x.id)?;
        m.serialize_entry("expiresAt", &iso(x.expires_at))?;
        m.serialize_entry("token", &x.token)?;
        m.serialize_entry("createdAt", &iso(x.created_at))?;
        m.serialize_entry("updatedAt", &iso(x.updated_at))?;
        m.serialize_entry("ipAddress", &x.ip_address)?;
        m.serialize_entry("userAgent", &x.user_agent)?;
        m.serialize_entry("userId", &x.user_id)?;
        m.end()
    }
}

/// A date as Better Auth's JSON carries it: an ISO string (or epoch milliseconds).
fn date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Date {
        Iso(String),
        Ms(i64),
    }
    match Date::deserialize(d)? {
        Date::Iso(s) => parse_iso(&s).ok_or_else(|| serde::de::Error::custom("not a date")),
        Date::Ms(ms) => Ok(ms),
    }
}

/// A session read back from [`SessionJson`]'s shape (a cookie cache, Redis).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionIn {
    id: String,
    token: String,
    user_id: String,
    #[serde(deserialize_with = "date")]
    expires_at: i64,
    #[serde(deserialize_with = "date")]
    created_at: i64,
    #[serde(deserialize_with = "date")]
    updated_at: i64,
    #[serde(default)]
    ip_address: Option<String>,
    #[serde(default)]
    user_agent: Option<String>,
}

impl From<SessionIn> for Session {
    fn from(this: SessionIn) -> Session {
        Session {
            id: this.id,
            token: this.token,
            user_id: this.user_id,
            expires_at: this.expires_at,
            created_at: this.created_at,
            updated_at: this.updated_at,
            ip_address: this.ip_address,
            user_agent: this.user_agent,
        }
    }
}

/// A user read back from [`UserJson`]'s shape; plugin columns absent are unset.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIn {
    id: String,
    name: String,
    email: String,
    email_verified: bool,
    #[serde(default)]
    image: Option<String>,
    #[serde(deserialize_with = "date")]
    created_at: i64,
    #[serde(deserialize_with = "date")]
    updated_at: i64,
    #[serde(default)]
    is_anonymous: Option<bool>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    display_username: Option<String>,
}

impl From<UserIn> for User {
    fn from(this: UserIn) -> User {
        User {
            id: this.id,
            name: this.name,
            email: this.email,
            email_verified: this.email_verified,
            image: this.image,
            created_at: this.created_at,
            updated_at: this.updated_at,
            is_anonymous: this.is_anonymous.unwrap_or(false),
            username: this.username,
            display_username: this.display_username,
        }
    }
}

/// `{"session", "user"}`, as get-session answers (and `get_session` in Python), written
/// straight from the rows; [`UserFields::ALL`] keeps every column (a copy to read back).
pub struct SessionAndUserJson<'a>(pub &'a Session, pub &'a User, pub UserFields);

impl Serialize for SessionAndUserJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("session", &SessionJson(self.0))?;
        m.serialize_entry("user", &UserJson(self.1, self.2))?;
        m.end()
    }
}

/// [`SessionAndUserJson`] read back.
pub fn session_and_user_from_json(json: &[u8]) -> Option<(Session, User)> {
    #[derive(Deserialize)]
    struct Pair {
        session: SessionIn,
        user: UserIn,
    }
    let pair: Pair = serde_json::from_slice(json).ok()?;
    Some((pair.session.into(), pair.user.into()))
}

/// A row of the `passkey` table (spec §4): a WebAuthn credential of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passkey {
    pub id: String,
    pub name: Option<String>,
    /// The COSE public key, standard base64 with padding.
    pub public_key: String,
    pub user_id: String,
    /// The credential id as the browser sends it (base64url, unpadded).
    pub credential_id: String,
    pub counter: i64,
    /// `singleDevice` or `multiDevice`.
    pub device_type: String,
    pub backed_up: bool,
    /// Comma-joined, `""` when none.
    pub transports: Option<String>,
    pub created_at: i64,
    pub aaguid: Option<String>,
}

impl Serialize for Passkey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(11))?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("name", &self.name)?;
        m.serialize_entry("publicKey", &self.public_key)?;
        m.serialize_entry("userId", &self.user_id)?;
        m.serialize_entry("credentialID", &self.credential_id)?;
        m.serialize_entry("counter", &self.counter)?;
        m.serialize_entry("deviceType", &self.device_type)?;
        m.serialize_entry("backedUp", &self.backed_up)?;
        m.serialize_entry("transports", &self.transports)?;
        m.serialize_entry("createdAt", &iso(self.created_at))?;
        m.serialize_entry("aaguid", &self.aaguid)?;
        m.end()
    }
}

/// Zod's `z.email()` "practical" pattern: a local part of `[A-Za-z0-9_'+.-]` that
/// neither starts with `.` nor holds `..` and ends in `[A-Za-z0-9_+-]`; a domain
/// of labels that start alphanumeric, and a TLD of two letters or more.
pub fn is_valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && !local.starts_with('.')
        && !local.contains("..")
        && local.bytes().all(|b| b.is_ascii_alphanumeric() || b"_'+-.".contains(&b))
        && local.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric() || b"_+-".contains(&b));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels[..labels.len() - 1].iter().all(|l| {
            l.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels.last().is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
    local_ok && domain_ok
}
