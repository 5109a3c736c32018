"""Kernia apps' databases, callbacks, options and test switches on this package: its
SQLAlchemy adapter (and plain SQLAlchemy engines) on SQLite and PostgreSQL, ``ctx.request``
read by attribute, Kernia's option spellings, its rate-limit store and its test-only
``advanced`` keys."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from kernia import ConfigurationError
from kernia.auth import init
from kernia.plugins import anonymous, email_and_password, magic_link, passkey
from kernia.testing import advance_clock
from kernia.types.adapter import FieldDef, ModelDef, Where
from kernia.types.init_options import KerniaOptions, ModelConfig, SessionOptions

from conftest import SECRET, Browser, database_url

#: An app's own model, with a date and a boolean column.
CART = ModelDef(
    "cart",
    (
        FieldDef("id", "string"),
        FieldDef("userId", "string"),
        FieldDef("paid", "boolean", default=False),
        FieldDef("createdAt", "date"),
    ),
)


def _options(database: Any, **kw: Any) -> KerniaOptions:
    return KerniaOptions(database=database, secret=SECRET, plugins=[email_and_password()], **kw)


async def _sign_up(auth: Any, email: str = "ada@example.com") -> dict[str, Any]:
    browser = Browser(auth.router.mount())
    try:
        answer = await browser.sign_up(email)
        assert answer.status_code == 200, answer.text
        return answer.json()["user"]
    finally:
        await browser.aclose()


async def test_in_memory_sqlalchemy_urls_get_private_databases_shared_by_name(open_auth):
    from kernia_sqlalchemy import sqlalchemy_adapter
    from kernia_sqlalchemy.adapter import SQLAlchemyAdapter, build_metadata

    from kernia.db.schema import CORE_MODELS

    first = await sqlalchemy_adapter(url="sqlite+aiosqlite:///:memory:")
    auth = open_auth(_options(first))
    user = await _sign_up(auth)
    found = await first.find_one(model="user", where=(Where("id", user["id"]),))
    assert found is not None and found["email"] == "ada@example.com" and found["emailVerified"] is False
    # Another :memory: adapter is another, empty database.
    other = await sqlalchemy_adapter(url="sqlite+aiosqlite:///:memory:")
    open_auth(_options(other))
    assert await other.count(model="user") == 0

    # Kernia's fixtures: a named shared-memory URI; adapters given the same name share it.
    url = f"sqlite+aiosqlite:///file:{secrets.token_hex(8)}?mode=memory&cache=shared&uri=true"
    from sqlalchemy.pool import StaticPool

    engines = [create_async_engine(url, poolclass=StaticPool) for _ in range(2)]
    metadata = build_metadata(CORE_MODELS)
    async with engines[0].begin() as conn:
        await conn.run_sync(metadata.create_all)
    a, b = (SQLAlchemyAdapter(engine=e, metadata=metadata, models=CORE_MODELS) for e in engines)
    open_auth(_options(a))
    await _sign_up(open_auth(_options(b)), "grace@example.com")
    assert [u["email"] for u in await a.find_many(model="user")] == ["grace@example.com"]
    for engine in engines:
        await engine.dispose()


async def test_a_sqlite_file_is_shared_with_the_apps_own_engine(open_auth, tmp_path):
    from kernia_sqlalchemy import sqlalchemy_adapter

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    adapter = await sqlalchemy_adapter(engine=engine, extra_models=[CART])
    auth = open_auth(_options(adapter))
    user = await _sign_up(auth)
    # The app's engine sees the engine's rows, and the app's table is in the same file.
    async with engine.connect() as conn:
        emails = (await conn.execute(text('SELECT email FROM "user"'))).scalars().all()
    assert emails == ["ada@example.com"]
    # The adapter reaches the app's own model: booleans as bool, dates from Unix seconds.
    cart = await adapter.create(
        model="cart", data={"id": "c1", "userId": user["id"], "createdAt": 1_700_000_000}
    )
    assert cart["paid"] is False and "2023-11-14" in str(cart["createdAt"])
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT userId FROM cart"))).scalar() == user["id"]

    # adapter.transaction(): the calls in the block commit together or not at all.
    with pytest.raises(RuntimeError, match="refused"):
        async with adapter.transaction():
            await adapter.update(model="cart", where=(Where("id", "c1"),), update={"paid": True})
            await adapter.create(model="cart", data={"id": "c2", "userId": user["id"], "createdAt": 0})
            raise RuntimeError("refused")
    assert [c["id"] for c in await adapter.find_many(model="cart")] == ["c1"]
    assert (await adapter.find_one(model="cart", where=(Where("id", "c1"),)))["paid"] is False
    async with adapter.transaction():
        await adapter.update(model="cart", where=(Where("id", "c1"),), update={"paid": True})
    assert (await adapter.find_one(model="cart", where=(Where("id", "c1"),)))["paid"] is True
    await engine.dispose()


async def test_a_sqlalchemy_engine_on_postgresql_is_served_by_the_engines_driver(open_auth, tmp_path):
    from sqlalchemy import create_engine

    url = database_url("postgres", tmp_path)
    # A plain (sync, psycopg) SQLAlchemy engine given directly as the database.
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    auth = open_auth(_options(engine))
    email = f"{secrets.token_hex(4)}@example.com"
    user = await _sign_up(auth, email)
    with engine.connect() as conn:
        found = conn.execute(text('SELECT id FROM "user" WHERE email = :e'), {"e": email}).scalar()
    assert found == user["id"]
    engine.dispose()


def test_sqlalchemy_urls_map_to_the_engines_and_unknown_databases_are_refused():
    from kernia_sqlalchemy.adapter import engine_database_url

    assert engine_database_url("sqlite+aiosqlite:///rel/app.db") == "sqlite:///rel/app.db"
    assert engine_database_url("sqlite+aiosqlite:////abs/app.db") == "sqlite:////abs/app.db"
    assert (
        engine_database_url("postgresql+asyncpg://u:p%40ss@db.internal:5433/app?ssl=require")
        == "postgresql://u:p%40ss@db.internal:5433/app?sslmode=require"
    )
    with pytest.raises(ConfigurationError, match=r"'mysql' is not supported.*SQLite.*PostgreSQL"):
        engine_database_url("mysql+aiomysql://u@h/app")
    with pytest.raises(TypeError, match="a SQLAlchemy engine; got dict"):
        init(_options({"url": "sqlite://"}))


async def test_in_process_session_checks_delete_an_expired_session(open_auth, tmp_path):
    from kernia_memory_adapter import memory_adapter

    database = memory_adapter()
    auth = open_auth(_options(database))
    browser = Browser(auth.router.mount())
    await browser.sign_up()
    headers = {"cookie": "; ".join(f"{k}={v}" for k, v in browser.cookies.items())}
    assert await auth.api.get_session(headers) is not None
    advance_clock(auth, 8 * 86_400)
    assert await auth.api.get_session(headers) is None
    # Seen expired, the row is gone, as GET /get-session does.
    assert await database.count(model="session") == 0
    await browser.aclose()


async def test_callbacks_read_ctx_request_by_key_and_by_attribute(open_auth, tmp_path):
    seen: dict[str, Any] = {}

    async def on_link(anonymous_user, new_user, ctx):
        r = ctx.request
        seen.update(path=r.path, key_path=r["path"], method=r.method, agent=r.headers["user-agent"])
        seen.update(query=r.query, cookies=sorted(r.cookies), ip=r.client_ip)

    auth = open_auth(
        KerniaOptions(
            database=database_url("sqlite", tmp_path),
            secret=SECRET,
            plugins=[email_and_password(), anonymous(on_link=on_link)],
        )
    )
    browser = Browser(auth.router.mount())
    await browser.post("/sign-in/anonymous")
    answer = await browser.post(
        "/sign-up/email?src=ad&tag=a&tag=b",
        {"name": "Ada", "email": "ada@example.com", "password": "correct-horse"},
        headers={"user-agent": "shop/1"},
    )
    assert answer.status_code == 200, answer.text
    assert seen["path"] == seen["key_path"] == "/sign-up/email" and seen["method"] == "POST"
    assert seen["agent"] == "shop/1" and seen["query"] == {"src": "ad", "tag": ["a", "b"]}
    assert seen["cookies"] == ["better-auth.session_token"] and seen["ip"] == "127.0.0.1"
    await browser.aclose()


async def test_hashed_magic_link_tokens_are_stored_under_kernias_default_key_hasher(open_auth):
    from kernia_memory_adapter import memory_adapter

    from kernia.plugins.magic_link.routes import default_key_hasher

    sent: list[dict[str, Any]] = []
    database = memory_adapter()
    auth = open_auth(
        KerniaOptions(
            database=database,
            secret=SECRET,
            plugins=[magic_link(lambda data, ctx: sent.append(data), store_token="hashed")],
        )
    )
    browser = Browser(auth.router.mount())
    assert (await browser.post("/sign-in/magic-link", {"email": "ada@example.com"})).status_code == 200
    token = sent[0]["token"]
    where = (Where("identifier", default_key_hasher(token)),)
    assert await database.find_one(model="verification", where=where) is not None
    assert await database.find_one(model="verification", where=(Where("identifier", token),)) is None
    await browser.aclose()


async def test_kernias_rate_limit_store_counts_on_its_own(monkeypatch):
    import kernia.auth.rate_limit as rate_limit

    now = [1000.0]
    monkeypatch.setattr(rate_limit.time, "time", lambda: now[0])
    store = rate_limit.InMemoryRateLimitStore()
    decisions = [await store.hit("k", window=60, max_=2) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert [d.remaining for d in decisions] == [1, 0, 0] and decisions[2].reset_at == 1060
    assert (await store.hit("other", window=60, max_=2)).allowed
    now[0] = 1060.5  # the window has ended: a new one starts
    again = await store.hit("k", window=60, max_=2)
    assert again.allowed and again.remaining == 1 and again.reset_at == 1121
    with pytest.raises(ValueError, match="window"):
        await store.hit("k", window=0, max_=2)


async def test_kernias_test_switches_answer_the_link_tokens(open_auth):
    from kernia_memory_adapter import memory_adapter

    auth = open_auth(
        _options(
            memory_adapter(),
            advanced={"expose_verification_token_for_tests": True, "expose_reset_token_for_tests": True},
        )
    )
    browser = Browser(auth.router.mount())
    await browser.sign_up()
    # No senders are configured: the switches stand in for them.
    sent = await browser.post("/send-verification-email", {"email": "ada@example.com"})
    assert sent.status_code == 200 and sent.json()["status"] is True
    verified = await browser.get("/verify-email", params={"token": sent.json()["_token"]})
    assert verified.status_code == 200 and verified.json() == {"status": True, "user": None}
    assert (await browser.session())["user"]["emailVerified"] is True

    browser.cookies.clear()
    reset = await browser.post("/request-password-reset", {"email": "ada@example.com"})
    assert reset.status_code == 200 and reset.json()["status"] is True
    done = await browser.post(
        "/reset-password", {"token": reset.json()["_token"], "newPassword": "new-horse-1"}
    )
    assert done.status_code == 200, done.text
    assert (await browser.sign_in(password="new-horse-1")).status_code == 200
    # Without the switches the routes still need senders, and answer no token.
    plain = open_auth(_options(memory_adapter()))
    other = Browser(plain.router.mount())
    refused = await other.post("/request-password-reset", {"email": "ada@example.com"})
    assert refused.status_code == 400 and refused.json()["code"] == "RESET_PASSWORD_DISABLED"
    await browser.aclose()
    await other.aclose()


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (
            {"secondary_storage": object()},
            "secondary_storage must be a Redis URL .* a storage written in Python",
        ),
        ({"social_providers": {"google": object()}}, "social_providers is not supported: there are no OAuth"),
        ({"database_hooks": {}}, "database_hooks is not supported"),
        ({"additional_fields": {"user": [FieldDef("plan", "string")]}}, "additional_fields is not supported"),
        (
            {"session": SessionOptions(cookie_cache_max_age=60)},
            "session.cookie_cache_max_age is set but the cookie cache is off",
        ),
        (
            {"session": SessionOptions(model_name="sessions")},
            "session.model_name is not supported: the engine keeps",
        ),
        ({"user": ModelConfig(fields={"email": "email_address"})}, "user.fields is not supported"),
    ],
)
def test_kernias_options_for_missing_features_are_refused_by_name(overrides, named):
    with pytest.raises(ConfigurationError, match=named):
        init(_options("sqlite::memory:", **overrides))


async def test_kernias_option_spellings_take_effect(open_auth):
    from kernia_memory_adapter import memory_adapter

    # Kernia's `user` is a ModelConfig; at its defaults it is accepted.
    open_auth(
        _options(memory_adapter(), user=ModelConfig(), session=SessionOptions(store_session_in_database=True))
    )
    auth = open_auth(
        KerniaOptions(
            database=memory_adapter(),
            secret=SECRET,
            base_url="https://app.example",
            plugins=[email_and_password(), passkey()],
            advanced={
                "app_name": "Shop",
                "defaultCookieAttributes": {"sameSite": "None", "partitioned": True, "domain": "app.example"},
            },
        )
    )
    browser = Browser(auth.router.mount(), origin="https://app.example")
    answer = await browser.sign_up()
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("__Secure-better-auth.session_token=")
    assert "; Domain=app.example; Path=/; HttpOnly; Secure; SameSite=None; Partitioned" in cookie
    # Passkeys show the app's name, as Better Auth's do with appName.
    options = await browser.get("/passkey/generate-register-options")
    assert options.json()["rp"]["name"] == "Shop"
    await browser.aclose()
    with pytest.raises(ConfigurationError, match='same_site "none" needs secure cookies'):
        init(_options("sqlite::memory:", advanced={"default_cookie_attributes": {"same_site": "none"}}))
    with pytest.raises(ConfigurationError, match=r"unknown attribute.*max_age"):
        init(_options("sqlite::memory:", advanced={"default_cookie_attributes": {"max_age": 5}}))


def test_kernias_schema_records_build_sqlalchemy_tables():
    from kernia_sqlalchemy import build_metadata

    from kernia.db.schema import CORE_MODELS
    from kernia.plugins.anonymous import _ANONYMOUS_USER_FIELDS
    from kernia.plugins.username import _USERNAME_USER_FIELDS

    user = next(m for m in CORE_MODELS if m.name == "user")
    extended = ModelDef("user", (*user.fields, *_ANONYMOUS_USER_FIELDS, *_USERNAME_USER_FIELDS))
    table = build_metadata([extended, CART]).tables["user"]
    assert {"isAnonymous", "username", "displayUsername"} <= set(table.c.keys())
    assert table.c.username.unique and table.c.isAnonymous.nullable


def test_kernias_error_tables_are_the_codes_the_server_answers_with(open_auth):
    from kernia_passkey import PASSKEY_ERROR_CODES

    from kernia._native import error_catalogue
    from kernia.error import CORE_ERROR_CODES, ErrorRegistry
    from kernia.plugins.anonymous import ANONYMOUS_ERROR_CODES
    from kernia.plugins.magic_link import MAGIC_LINK_ERROR_CODES
    from kernia.plugins.username import USERNAME_ERROR_CODES

    answered = {(code, message) for _, code, message in error_catalogue()}
    tables = (ANONYMOUS_ERROR_CODES, USERNAME_ERROR_CODES, MAGIC_LINK_ERROR_CODES, PASSKEY_ERROR_CODES)
    for table in (*tables, CORE_ERROR_CODES):
        assert table and set(table.items()) <= answered
    assert ANONYMOUS_ERROR_CODES["ANONYMOUS_USERS_CANNOT_SIGN_IN_AGAIN_ANONYMOUSLY"] == (
        "Anonymous users cannot sign in again anonymously"
    )
    assert "USERNAME_IS_ALREADY_TAKEN" not in CORE_ERROR_CODES and "INVALID_ORIGIN" in CORE_ERROR_CODES
    # auth.errors: the core's codes and those of the plugins in use.
    auth = open_auth(
        KerniaOptions(database="sqlite::memory:", secret=SECRET, plugins=[email_and_password(), anonymous()])
    )
    assert isinstance(auth.errors, ErrorRegistry)
    assert "USER_IS_NOT_ANONYMOUS" in auth.errors.codes and "USERNAME_TOO_SHORT" not in auth.errors.codes
    assert auth.errors.codes["INVALID_EMAIL_OR_PASSWORD"] == "Invalid email or password"


async def test_kernias_helpers_for_apps(open_auth):
    from fastapi import FastAPI
    from kernia_fastapi import mount_auth

    from kernia.auth import Kernia
    from kernia.integrations.session import SESSION_COOKIE_NAME, resolve_session

    auth = open_auth(_options("sqlite::memory:", base_url="https://app.example"))
    assert isinstance(auth, Kernia)
    # The cookie name follows https (``__Secure-``) and the prefix.
    assert auth.session_cookie_name == f"__Secure-{SESSION_COOKIE_NAME}"
    app = FastAPI()
    mount_auth(app, auth)  # the name Kernia's docs use
    browser = Browser(app, origin="https://app.example")
    await browser.sign_up()
    value = browser.cookies[auth.session_cookie_name]
    session = await resolve_session(auth, value)
    assert session is not None and session.user_id
    assert await resolve_session(auth, value[:-2] + "xx") is None
    assert await resolve_session(auth, None) is None
    await browser.aclose()


def test_kernias_passkey_options_object(open_auth):
    from kernia_passkey import PasskeyOptions, PasskeyRegistrationOptions

    plugin = passkey(PasskeyOptions(rp_id="app.example", rp_name="Shop", origin="https://app.example"))
    assert (plugin.rp_id, plugin.rp_name, plugin.origin) == ("app.example", "Shop", ("https://app.example",))
    with pytest.raises(
        ConfigurationError, match=r"PasskeyOptions\.registration\.require_session is not supported"
    ):
        passkey(PasskeyOptions(registration=PasskeyRegistrationOptions(require_session=False)))
    with pytest.raises(TypeError, match="not both"):
        passkey(PasskeyOptions(), rp_name="x")
