"""Databases and cookies written by Better Auth and Kernia keep working (spec §2.3, §5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kernia import EmailPasswordOptions, KerniaOptions, RateLimitOptions
from kernia.auth import init

BA_SECRET = "better-auth-secret-12345678901234567890"
BA_HASH = (
    "0123456789abcdef0123456789abcdef:e8b256b6f9f4b1641136a66d4a26ba41a47b6c8c9bad6aa4145559ffda45ece1"
    "f0f16dec8482a3e5545feada0ba62f2b05eeb943b750c9396874e1762c78d27d"
)
VECTOR_TOKEN = "abcdefghijklmnopqrstuvwxyz012345"
VECTOR_COOKIE = "abcdefghijklmnopqrstuvwxyz012345.I9CRtBzOYKOp91pmsrUITzor0IvV8qog4R1ydDphbLY%3D"


def _ts(env, dt: datetime):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if env.backend == "sqlite" else dt


def _insert_user(env, user_id: str, email: str, password_hash: str | None) -> None:
    now = datetime.now(UTC)
    env.db.execute(
        'INSERT INTO "user" ("id","name","email","emailVerified","createdAt","updatedAt") VALUES (?,?,?,?,?,?)',
        user_id,
        "Imported",
        email,
        False,
        _ts(env, now),
        _ts(env, now),
    )
    if password_hash:
        env.db.execute(
            'INSERT INTO "account" ("id","accountId","providerId","userId","password","createdAt","updatedAt") VALUES (?,?,?,?,?,?,?)',
            "acc-" + user_id,
            user_id,
            "credential",
            user_id,
            password_hash,
            _ts(env, now),
            _ts(env, now),
        )


async def test_a_better_auth_password_hash_signs_in(env, browser_for):
    auth = env.make()
    _insert_user(env, "baUser00000000000000000000000001", "ba@example.com", BA_HASH)
    b = browser_for(auth)
    r = await b.sign_in(email="ba@example.com", password="password123")
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] == "baUser00000000000000000000000001"
    assert (await b.sign_in(email="ba@example.com", password="password124")).status_code == 401


async def test_a_kernia_argon2id_hash_signs_in(env, browser_for):
    from argon2 import PasswordHasher

    auth = env.make()
    _insert_user(
        env,
        "kerniaUser0000000000000000000001",
        "kernia@example.com",
        PasswordHasher().hash("hunter2-hunter2"),
    )
    b = browser_for(auth)
    assert (await b.sign_in(email="kernia@example.com", password="hunter2-hunter2")).status_code == 200
    assert (await b.sign_in(email="kernia@example.com", password="hunter3-hunter3")).status_code == 401


async def test_a_user_without_a_password_cannot_sign_in(env, browser_for):
    auth = env.make()
    _insert_user(env, "noPassword0000000000000000000001", "nopw@example.com", None)
    r = await browser_for(auth).sign_in(email="nopw@example.com", password="anything-at-all")
    assert r.status_code == 401 and r.json()["code"] == "INVALID_EMAIL_OR_PASSWORD"


async def test_the_spec_cookie_vector_is_accepted_and_other_secrets_are_not(env, browser_for, tmp_path):
    ba = env.make(secret=BA_SECRET)
    _insert_user(env, "vectorUser000000000000000000001", "vector@example.com", None)
    now = datetime.now(UTC)
    env.db.execute(
        'INSERT INTO "session" ("id","token","userId","expiresAt","createdAt","updatedAt") VALUES (?,?,?,?,?,?)',
        "vectorSession",
        VECTOR_TOKEN,
        "vectorUser000000000000000000001",
        _ts(env, now + timedelta(days=7)),
        _ts(env, now),
        _ts(env, now),
    )
    b = browser_for(ba)
    b.cookies["better-auth.session_token"] = VECTOR_COOKIE
    s = await b.session()
    assert s["session"]["token"] == VECTOR_TOKEN
    assert s["user"]["email"] == "vector@example.com"

    other = browser_for(env.make(secret="not-the-better-auth-secret-1234567890"))
    other.cookies["better-auth.session_token"] = VECTOR_COOKIE
    assert await other.session() is None


async def test_restarting_on_the_same_database_keeps_everything(tmp_path, browser_for):
    url = f"sqlite:///{tmp_path / 'restart.db'}"

    def options() -> KerniaOptions:
        return KerniaOptions(
            database=url,
            secret="s" * 32,
            email_and_password=EmailPasswordOptions(enabled=True),
            rate_limit=RateLimitOptions(enabled=False),
        )

    with init(options()) as first:
        b = browser_for(first)
        await b.sign_up()
    with init(options()) as second:  # migrations run again and change nothing
        b2 = browser_for(second)
        b2.cookies = dict(b.cookies)
        assert (await b2.session())["user"]["email"] == "ada@example.com"


# The core tables exactly as Better Auth's CLI (`npx @better-auth/cli migrate`) creates them,
# without any plugin column or table.
_BA_TYPES = {
    "postgres": {"bool": "boolean", "date": "timestamptz", "now": " default CURRENT_TIMESTAMP"},
    "sqlite": {"bool": "integer", "date": "date", "now": ""},
}
_BA_SCHEMA = """
create table "user" ("id" text not null primary key, "name" text not null, "email" text not null unique,
  "emailVerified" {bool} not null, "image" text, "createdAt" {date}{now} not null, "updatedAt" {date}{now} not null);
create table "session" ("id" text not null primary key, "expiresAt" {date} not null, "token" text not null unique,
  "createdAt" {date}{now} not null, "updatedAt" {date} not null, "ipAddress" text, "userAgent" text,
  "userId" text not null references "user" ("id") on delete cascade);
create table "account" ("id" text not null primary key, "accountId" text not null, "providerId" text not null,
  "userId" text not null references "user" ("id") on delete cascade, "accessToken" text, "refreshToken" text,
  "idToken" text, "accessTokenExpiresAt" {date}, "refreshTokenExpiresAt" {date}, "scope" text, "password" text,
  "createdAt" {date}{now} not null, "updatedAt" {date} not null);
create table "verification" ("id" text not null primary key, "identifier" text not null, "value" text not null,
  "expiresAt" {date} not null, "createdAt" {date}{now} not null, "updatedAt" {date}{now} not null);
create index "session_userId_idx" on "session" ("userId");
create index "account_userId_idx" on "account" ("userId");
create index "verification_identifier_idx" on "verification" ("identifier")
"""


def _columns(env, table: str) -> set[str]:
    if env.backend == "sqlite":
        return {r[0] for r in env.db.rows(f"SELECT name FROM pragma_table_info('{table}')")}
    sql = "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
    return {r[0] for r in env.db.rows(sql, table)}


async def test_an_existing_better_auth_database_is_migrated_in_place(env, browser_for):
    from kernia.plugins.anonymous import anonymous
    from kernia.plugins.passkey import passkey
    from kernia.plugins.username import username

    for table in ("passkey", "rateLimit", "verification", "account", "session", "user"):
        env.db.execute(f'DROP TABLE IF EXISTS "{table}"' + (" CASCADE" if env.backend == "postgres" else ""))
    for statement in _BA_SCHEMA.format(**_BA_TYPES[env.backend]).split(";"):
        env.db.execute(statement)
    _insert_user(env, "baUser0000000000000000000000001", "imported@example.com", BA_HASH)
    plugins = [anonymous(), username(), passkey()]

    auth = env.make(secret=BA_SECRET, plugins=plugins)
    assert {"isAnonymous", "username", "displayUsername"} <= _columns(env, "user")
    assert {"credentialID", "publicKey", "counter"} <= _columns(env, "passkey")
    # Better Auth's user signs in with the password Better Auth hashed.
    b = browser_for(auth)
    r = await b.sign_in("imported@example.com", "password123")
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] == "baUser0000000000000000000000001"
    # Every table works: a guest, its conversion, a username, a rate-limit bucket.
    g = browser_for(auth)
    guest_id = (await g.post("/sign-in/anonymous", {})).json()["user"]["id"]
    r = await g.post("/sign-up/email", {"name": "G", "email": "g@example.com", "password": "correct-horse",
                                         "username": "guesty"})  # fmt: skip
    assert r.status_code == 200, r.text
    env.db.assert_gone(guest_id)
    assert env.db.rows('SELECT "username" FROM "user" WHERE "email" = ?', "g@example.com") == [("guesty",)]
    # Opening it again changes nothing, and what was there stays.
    before = env.db.snapshot()
    again = browser_for(env.make(secret=BA_SECRET, plugins=plugins))
    assert env.db.snapshot() == before
    assert (await again.sign_in("imported@example.com", "password123")).status_code == 200
