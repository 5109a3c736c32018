"""Options the README promises, each shown to take effect (and its default to hold)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from helpers import Recorder, cart_table, guest

from kernia import EmailPasswordOptions, RateLimitOptions
from kernia.plugins.anonymous import anonymous
from kernia.testing import advance_clock

from conftest import POSTGRES_URL, set_cookies


async def test_cookie_prefix_names_every_cookie(env, browser_for):
    r = await browser_for(env.make(advanced={"cookie_prefix": "shop"})).sign_up()
    assert r.status_code == 200
    assert set(set_cookies(r)) == {"shop.session_token"}
    r = await browser_for(env.make()).sign_up(email="grace@example.com")
    assert set(set_cookies(r)) == {"better-auth.session_token"}


async def test_use_secure_cookies_on_an_http_base_url(env, browser_for):
    r = await browser_for(env.make(advanced={"use_secure_cookies": True})).sign_up()
    [(name, line)] = set_cookies(r).items()
    assert name == "__Secure-better-auth.session_token" and "; Secure" in line
    r = await browser_for(env.make()).sign_up(email="grace@example.com")
    [(name, line)] = set_cookies(r).items()
    assert name == "better-auth.session_token" and "Secure" not in line


async def test_max_body_size_is_the_limit(env, browser_for):
    b = browser_for(env.make(advanced={"max_body_size": 200}))
    r = await b.sign_up(name="x" * 300)
    assert (r.status_code, r.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert env.db.count("user") == 0
    assert (await b.sign_up()).status_code == 200


async def test_auto_sign_in_false_creates_the_account_without_a_session(env, browser_for):
    b = browser_for(env.make(email_and_password=EmailPasswordOptions(enabled=True, auto_sign_in=False)))
    r = await b.sign_up()
    assert r.status_code == 200 and r.json()["token"] is None
    assert "set-cookie" not in r.headers
    assert (env.db.count("user"), env.db.count("session")) == (1, 0)
    assert (await b.sign_in()).status_code == 200


@pytest.mark.parametrize("env", ["postgres"], indirect=True)
async def test_the_postgres_scheme_is_postgresql(env, browser_for):
    assert POSTGRES_URL and POSTGRES_URL.startswith("postgresql://")
    auth = env.make(database="postgres://" + POSTGRES_URL.removeprefix("postgresql://"))
    assert (await browser_for(auth).sign_up()).status_code == 200
    assert env.db.count("user") == 1


async def test_on_link_reads_with_fetch_all_and_fetch_one(env, browser_for):
    cart_table(env)
    seen = {}

    async def on_link(anonymous_user, new_user, ctx):
        mark = "?" if ctx.db.dialect == "sqlite" else "$1"
        rows = await ctx.db.fetch_all(
            f'SELECT "id", "item" FROM "cart" WHERE "user_id" = {mark}', [anonymous_user["id"]]
        )
        one = await ctx.db.fetch_one(
            f'SELECT "item" FROM "cart" WHERE "user_id" = {mark}', [anonymous_user["id"]]
        )
        none = await ctx.db.fetch_one(f'SELECT "item" FROM "cart" WHERE "user_id" = {mark}', ["nobody"])
        seen.update(rows=rows, one=one, none=none)

    b = browser_for(env.make(plugins=[anonymous(on_link=on_link)]))
    guest_id = (await guest(b))["user"]["id"]
    env.db.execute('INSERT INTO "cart" VALUES (?, ?, ?)', "c1", guest_id, "book")
    assert (await b.sign_up()).status_code == 200
    assert seen == {"rows": [{"id": "c1", "item": "book"}], "one": {"item": "book"}, "none": None}


async def test_disable_origin_check_accepts_any_callback_url(env, browser_for):
    body = {
        "email": "ada@example.com",
        "password": "correct-horse",
        "callbackURL": "https://elsewhere.example/x",
    }
    strict = browser_for(env.make())
    await strict.sign_up()
    r = await strict.post("/sign-in/email", body)
    assert (r.status_code, r.json()["code"]) == (403, "INVALID_CALLBACK_URL")
    loose = browser_for(env.make(advanced={"disable_origin_check": True}))
    r = await loose.post("/sign-in/email", body)
    assert r.status_code == 200 and r.json()["url"] == "https://elsewhere.example/x"


async def test_the_global_rate_limit_default_is_100_a_minute(env, browser_for):
    auth = env.make(rate_limit=RateLimitOptions())
    b = browser_for(auth)
    for _ in range(100):
        assert (await b.get("/get-session")).status_code == 200
    r = await b.get("/get-session")
    assert r.status_code == 429 and int(r.headers["x-retry-after"]) > 0
    # Another path has a bucket of its own.
    assert (await b.get("/ok")).status_code == 200
    advance_clock(auth, 61)
    assert (await b.get("/get-session")).status_code == 200


async def test_database_rate_limit_buckets_are_pruned_once_a_window(env, browser_for):
    """storage="database": buckets idle for the longest window (60 s here) are deleted by
    the first request after it; until then they stay."""
    auth = env.make(
        rate_limit=RateLimitOptions(storage="database"), advanced={"trusted_proxies": ["127.0.0.1"]}
    )
    b = browser_for(auth)
    for ip in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
        assert (await b.get("/ok", headers={"x-forwarded-for": ip})).status_code == 200

    def keys() -> set[str]:
        return {row[0] for row in env.db.rows('SELECT "key" FROM "rateLimit"')}

    assert keys() == {f"203.0.113.{i}|/ok" for i in (1, 2, 3)}
    advance_clock(auth, 59)
    await b.get("/ok", headers={"x-forwarded-for": "203.0.113.4"})
    assert len(keys()) == 4
    advance_clock(auth, 1)
    await b.get("/ok", headers={"x-forwarded-for": "203.0.113.4"})
    assert keys() == {"203.0.113.4|/ok"}


def _reader_threads() -> int:
    """The engines' SQLite reader threads in this process (Linux names them)."""
    from pathlib import Path

    return sum(
        1
        for task in Path("/proc/self/task").iterdir()
        if (task / "comm").read_text().startswith("kernia-sqlite-r")
    )


async def test_database_pool_size(env, browser_for):
    if env.backend == "sqlite":
        # Readers beside the one writer: 2 by default, as many as asked.
        before = _reader_threads()
        env.make()
        assert _reader_threads() - before == 2
        env.make(advanced={"database_pool_size": 5})
        assert _reader_threads() - before == 7
        return
    # PostgreSQL: the pool holds at most this many connections. With one, a request
    # waits while a conversion holds it inside on_link; with two, it does not.
    for size, waits in ((1, True), (2, False)):
        on_link = Recorder()
        auth = env.make(plugins=[anonymous(on_link=on_link)], advanced={"database_pool_size": size})
        cart_table(env)
        b, someone = browser_for(auth), browser_for(auth)
        await guest(b)
        await guest(someone)
        on_link.release = threading.Event()
        converting = asyncio.ensure_future(b.sign_up(email=f"pool{size}@example.com"))
        assert await asyncio.to_thread(on_link.started.wait, 10)
        other = asyncio.ensure_future(someone.get("/get-session"))  # reads the session row
        done, _ = await asyncio.wait({other}, timeout=1.0)
        on_link.release.set()
        assert (await converting).status_code == 200
        assert (await other).status_code == 200
        assert (not done) == waits, f"database_pool_size={size}"
