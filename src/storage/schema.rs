//! Better Auth's tables (spec §4). Plugin columns are added to tables created by
//! an older schema or by Better Auth itself, so a shared database keeps working.

/// `(table, column, SQLite type, PostgreSQL type)` for columns added after the table was created.
pub const ADDED_COLUMNS: &[(&str, &str, &str, &str)] = &[
    ("user", "isAnonymous", "integer DEFAULT 0", "boolean DEFAULT false"),
    ("user", "username", "text", "text"),
    ("user", "displayUsername", "text", "text"),
];

pub const SQLITE_TABLES: &str = r#"
CREATE TABLE IF NOT EXISTS "user" (
  "id" text NOT NULL PRIMARY KEY, "name" text NOT NULL, "email" text NOT NULL UNIQUE,
  "emailVerified" integer NOT NULL DEFAULT 0, "image" text,
  "createdAt" date NOT NULL, "updatedAt" date NOT NULL);
CREATE TABLE IF NOT EXISTS "session" (
  "id" text NOT NULL PRIMARY KEY, "expiresAt" date NOT NULL, "token" text NOT NULL UNIQUE,
  "createdAt" date NOT NULL, "updatedAt" date NOT NULL, "ipAddress" text, "userAgent" text,
  "userId" text NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS "session_userId_idx" ON "session" ("userId");
CREATE TABLE IF NOT EXISTS "account" (
  "id" text NOT NULL PRIMARY KEY, "accountId" text NOT NULL, "providerId" text NOT NULL,
  "userId" text NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE,
  "accessToken" text, "refreshToken" text, "idToken" text,
  "accessTokenExpiresAt" date, "refreshTokenExpiresAt" date, "scope" text, "password" text,
  "createdAt" date NOT NULL, "updatedAt" date NOT NULL);
CREATE INDEX IF NOT EXISTS "account_userId_idx" ON "account" ("userId");
CREATE TABLE IF NOT EXISTS "verification" (
  "id" text NOT NULL PRIMARY KEY, "identifier" text NOT NULL, "value" text NOT NULL,
  "expiresAt" date NOT NULL, "createdAt" date NOT NULL, "updatedAt" date NOT NULL);
CREATE INDEX IF NOT EXISTS "verification_identifier_idx" ON "verification" ("identifier");
CREATE TABLE IF NOT EXISTS "passkey" (
  "id" text NOT NULL PRIMARY KEY, "name" text, "publicKey" text NOT NULL,
  "userId" text NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE,
  "credentialID" text NOT NULL, "counter" integer NOT NULL, "deviceType" text NOT NULL,
  "backedUp" integer NOT NULL, "transports" text, "createdAt" date, "aaguid" text);
CREATE INDEX IF NOT EXISTS "passkey_userId_idx" ON "passkey" ("userId");
CREATE INDEX IF NOT EXISTS "passkey_credentialID_idx" ON "passkey" ("credentialID");
"#;

pub const POSTGRES_TABLES: &str = r#"
CREATE TABLE IF NOT EXISTS "user" (
  "id" text NOT NULL PRIMARY KEY, "name" text NOT NULL, "email" text NOT NULL UNIQUE,
  "emailVerified" boolean NOT NULL DEFAULT false, "image" text,
  "createdAt" timestamptz NOT NULL DEFAULT now(), "updatedAt" timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS "session" (
  "id" text NOT NULL PRIMARY KEY, "expiresAt" timestamptz NOT NULL, "token" text NOT NULL UNIQUE,
  "createdAt" timestamptz NOT NULL DEFAULT now(), "updatedAt" timestamptz NOT NULL, "ipAddress" text, "userAgent" text,
  "userId" text NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS "session_userId_idx" ON "session" ("userId");
CREATE TABLE IF NOT EXISTS "account" (
  "id" text NOT NULL PRIMARY KEY, "accountId" text NOT NULL, "providerId" text NOT NULL,
  "userId" text NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE,
  "accessToken" text, "refreshToken" text, "idToken" text,
  "accessTokenExpiresAt" timestamptz, "refreshTokenExpiresAt" timestamptz, "scope" text, "password" text,
  "createdAt" timestamptz NOT NULL DEFAULT now(), "updatedAt" timestamptz NOT NULL);
CREATE INDEX IF NOT EXISTS "account_userId_idx" ON "account" ("userId");
CREATE TABLE IF NOT EXISTS "verification" (
  "id" text NOT NULL PRIMARY KEY, "identifier" text NOT NULL, "value" text NOT NULL,
  "expiresAt" timestamptz NOT NULL, "createdAt" timestamptz NOT NULL DEFAULT now(),
  "updatedAt" timestamptz NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS "verification_identifier_idx" ON "verification" ("identifier");
CREATE TABLE IF NOT EXISTS "passkey" (
  "id" text NOT NULL PRIMARY KEY, "name" text, "publicKey" text NOT NULL,
  "userId" text NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE,
  "credentialID" text NOT NULL, "counter" integer NOT NULL, "deviceType" text NOT NULL,
  "backedUp" boolean NOT NULL, "transports" text, "createdAt" timestamptz, "aaguid" text);
CREATE INDEX IF NOT EXISTS "passkey_userId_idx" ON "passkey" ("userId");
CREATE INDEX IF NOT EXISTS "passkey_credentialID_idx" ON "passkey" ("credentialID");
"#;

/// Indexes on added columns (SQLite cannot add a UNIQUE column with ALTER TABLE),
/// the guest funnel's table, and the rate-limit table (`rateLimit.storage = "database"`; Better Auth's columns,
/// `key` unique also where Better Auth created the table).
/// - The guest funnel (`guestFunnel`, this server's own table) holds one row per guest
///   whose time as a guest ended (converted, upgraded, deleted, cleaned up), written in
///   the transaction that ended it, so its counts are right across processes and
///   restarts; guests still guests are counted from the user table. Times are Unix ms.
/// - The username index is partial: guests and email users have no username, and
///   an index entry for each of them would cost every sign-up a random page write.
/// - `user_isAnonymous_idx` lists guests by id, which for our users is creation
///   order, so each guest sign-in appends at the right edge and cleanup and
///   counting read guests only.
macro_rules! added_indexes {
    ($true:literal, $bigint:literal) => {
        concat!(
            r#"CREATE UNIQUE INDEX IF NOT EXISTS "user_username_uidx" ON "user" ("username") WHERE "username" IS NOT NULL;
CREATE INDEX IF NOT EXISTS "user_isAnonymous_idx" ON "user" ("id") WHERE "isAnonymous" = "#,
            $true,
            r#";
CREATE TABLE IF NOT EXISTS "rateLimit" ("id" text NOT NULL PRIMARY KEY, "key" text NOT NULL, "count" integer NOT NULL, "lastRequest" "#,
            $bigint,
            r#" NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS "rateLimit_key_uidx" ON "rateLimit" ("key");
CREATE TABLE IF NOT EXISTS "guestFunnel" ("id" text NOT NULL PRIMARY KEY, "createdAt" "#,
            $bigint,
            r#" NOT NULL, "endedAt" "#,
            $bigint,
            r#", "outcome" text, "method" text, "durationMs" "#,
            $bigint,
            r#");
CREATE INDEX IF NOT EXISTS "guestFunnel_createdAt_idx" ON "guestFunnel" ("createdAt", "outcome", "method", "durationMs");"#
        )
    };
}
pub const SQLITE_ADDED_INDEXES: &str = added_indexes!("1", "integer");
pub const POSTGRES_ADDED_INDEXES: &str = added_indexes!("true", "bigint");

/// The columns every user query selects, in [`crate::model::User`] order.
pub const USER_COLUMNS: &str = r#"u."id", u."name", u."email", u."emailVerified", u."image", u."createdAt", u."updatedAt", u."isAnonymous", u."username", u."displayUsername""#;
pub const PASSKEY_COLUMNS: &str = r#""id", "name", "publicKey", "userId", "credentialID", "counter", "deviceType", "backedUp", "transports", "createdAt", "aaguid""#;
pub const ACCOUNT_COLUMNS: &str =
    r#""id", "accountId", "providerId", "userId", "password", "createdAt", "updatedAt", "scope""#;
pub const SESSION_COLUMNS: &str =
    r#"s."id", s."token", s."userId", s."expiresAt", s."createdAt", s."updatedAt", s."ipAddress", s."userAgent""#;
