"""Guest lifecycle: in-place upgrade, guest session lifetime, abuse limits, stale-guest
cleanup, events and the admin listing, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from helpers import Recorder, cart_table, eventually, guest, move_cart_sql

from kernia import KerniaOptions, RateLimitOptions, RateLimitRule
from kernia.auth import init
from kernia.errors import ConfigurationError
from kernia.plugins.anonymous import anonymous
from kernia.plugins.username import username
from kernia.testing import advance_clock

from conftest import SECRET, Browser, parse_iso, set_cookies

DAY = 86_400
UPGRADE_PATHS = ["/anonymous/upgrade", "/anonymous/link"]


class Events:
    """An on_event that records events; thread-safe (native-server callbacks run on their own loop)."""

    def __init__(self, fail: bool = False) -> None:
        self.events: list[dict] = []
        self.fail = fail
        self.lock = threading.Lock()

    async def __call__(self, event: dict) -> None:
        with self.lock:
            self.events.append(event)
        if self.fail:
            raise RuntimeError("the audit log is down")

    async def wait_for(self, kind: str, count: int = 1) -> list[dict]:
        """The events of this kind, once there are `count` (delivered after the answer)."""

        def found() -> list[dict] | None:
            with self.lock:
                of_kind = [e for e in self.events if e["type"] == kind]
            return of_kind if len(of_kind) >= count else None

        return await eventually(found, f"{count} {kind} event(s)")


def add_cart_item(env, user_id: str, item: str = "book") -> None:
    env.db.execute(
        'INSERT INTO "cart" ("id", "user_id", "item") VALUES (?, ?, ?)', f"c-{item}-{user_id}", user_id, item
    )


# --- 1. in-place upgrade -----------------------------------------------------------------------


@pytest.mark.parametrize("path", UPGRADE_PATHS)
async def test_upgrade_keeps_the_id_the_rows_and_the_session(env, browser_for, path):
    cart_table(env)
    auth = env.make(plugins=[anonymous()])
    b = browser_for(auth)
    g = (await guest(b))["user"]
    add_cart_item(env, g["id"])
    r = await b.post(path, {"email": "Ada@Example.com", "password": "correct-horse", "name": "Ada"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    user = body["user"]
    assert user["id"] == g["id"]
    assert (user["email"], user["name"], user["isAnonymous"], user["emailVerified"]) == (
        "ada@example.com",
        "Ada",
        False,
        False,
    )
    # The same session goes on, now a registered user's.
    session = await b.session()
    assert session["user"]["id"] == g["id"] and session["user"]["isAnonymous"] is False
    assert env.db.rows('SELECT "user_id" FROM "cart"') == [(g["id"],)]
    assert env.db.count("user") == 1
    # The new credential works from a fresh browser.
    other = browser_for(auth)
    r = await other.sign_in("ada@example.com", "correct-horse")
    assert r.status_code == 200 and r.json()["user"]["id"] == g["id"]


def signed_cookie(token: str) -> str:
    """A session cookie value as the server signs it (HMAC-SHA256, base64, URI-encoded)."""
    sig = base64.b64encode(hmac.new(SECRET.encode(), token.encode(), hashlib.sha256).digest()).decode()
    return quote(f"{token}.{sig}", safe="")


async def test_upgrade_revokes_the_guests_other_sessions(env, browser_for):
    auth = env.make(plugins=[anonymous()])
    b = browser_for(auth)
    g = (await guest(b))["user"]
    # The same guest signed in on another device (say, a copy of its token leaked).
    env.db.execute(
        'INSERT INTO "session" ("id", "token", "userId", "expiresAt", "createdAt", "updatedAt") '
        'SELECT \'other-session\', \'other-token\', "userId", "expiresAt", "createdAt", "updatedAt" '
        'FROM "session" WHERE "userId" = ?',
        g["id"],
    )
    other = browser_for(auth)
    other.cookies["better-auth.session_token"] = signed_cookie("other-token")
    assert (await other.session())["user"]["id"] == g["id"]
    r = await b.post("/anonymous/upgrade", {"email": "ada@example.com", "password": "correct-horse"})
    assert r.status_code == 200, r.text
    assert await other.session() is None
    assert env.db.rows('SELECT "id" FROM "session" WHERE "id" = ?', "other-session") == []
    assert (await b.session())["user"]["id"] == g["id"]


async def test_upgrade_errors_leave_the_database_as_it_was(env, browser_for):
    auth = env.make(plugins=[anonymous()])
    registered = browser_for(auth)
    assert (await registered.sign_up("taken@example.com")).status_code == 200

    nobody = browser_for(auth)
    r = await nobody.post("/anonymous/upgrade", {"email": "x@example.com", "password": "correct-horse"})
    assert (r.status_code, r.json()["code"]) == (401, "UNAUTHORIZED")

    r = await registered.post("/anonymous/upgrade", {"email": "x@example.com", "password": "correct-horse"})
    assert (r.status_code, r.json()["code"]) == (400, "USER_IS_NOT_ANONYMOUS")

    b = browser_for(auth)
    g = (await guest(b))["user"]
    before = env.db.snapshot()
    cases = [
        (
            {"email": "Taken@Example.com", "password": "correct-horse"},
            409,
            "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL",
        ),
        ({"email": "not-an-email", "password": "correct-horse"}, 422, "INVALID_EMAIL"),
        ({"email": "x@anonymous.placeholder.invalid", "password": "correct-horse"}, 422, "INVALID_EMAIL"),
        ({"email": "x@example.com", "password": "short"}, 422, "PASSWORD_TOO_SHORT"),
        ({"email": "x@example.com", "password": "p" * 129}, 422, "PASSWORD_TOO_LONG"),
        ({"email": "x@example.com"}, 400, "VALIDATION_ERROR"),
        ({"email": 5, "password": "correct-horse"}, 400, "VALIDATION_ERROR"),
    ]
    for payload, status, code in cases:
        r = await b.post("/anonymous/upgrade", payload)
        assert (r.status_code, r.json().get("code")) == (status, code), (payload, r.text)
        assert r.json()["message"]
    assert env.db.snapshot() == before
    session = await b.session()
    assert session["user"]["id"] == g["id"] and session["user"]["isAnonymous"] is True


async def test_upgrade_twice_is_refused(env, browser_for):
    b = browser_for(env.make(plugins=[anonymous()]))
    await guest(b)
    assert (
        await b.post("/anonymous/upgrade", {"email": "a@example.com", "password": "correct-horse"})
    ).status_code == 200
    r = await b.post("/anonymous/upgrade", {"email": "b@example.com", "password": "correct-horse"})
    assert (r.status_code, r.json()["code"]) == (400, "USER_IS_NOT_ANONYMOUS")
    assert env.db.count("account") == 1


async def test_upgrade_with_a_username(env, browser_for):
    auth = env.make(plugins=[anonymous(), username()])
    b = browser_for(auth)
    g = (await guest(b))["user"]
    r = await b.post(
        "/anonymous/upgrade", {"email": "ada@example.com", "password": "correct-horse", "username": "Ada_L"}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["user"]["username"], r.json()["user"]["displayUsername"]) == ("ada_l", "Ada_L")
    other = browser_for(auth)
    r = await other.post("/sign-in/username", {"username": "ada_l", "password": "correct-horse"})
    assert r.status_code == 200 and r.json()["user"]["id"] == g["id"]
    # A taken username is refused before anything is written.
    c = browser_for(auth)
    await guest(c)
    before = env.db.snapshot()
    r = await c.post(
        "/anonymous/upgrade", {"email": "bob@example.com", "password": "correct-horse", "username": "ada_l"}
    )
    assert (r.status_code, r.json()["code"]) == (400, "USERNAME_IS_ALREADY_TAKEN")
    assert env.db.snapshot() == before


async def test_allow_linking_false_turns_every_conversion_off(env, browser_for):
    cart_table(env)
    rec = Recorder()
    auth = env.make(plugins=[anonymous(rec, allow_linking=False)])
    b = browser_for(auth)
    g = (await guest(b))["user"]
    add_cart_item(env, g["id"])
    r = await b.post("/anonymous/upgrade", {"email": "ada@example.com", "password": "correct-horse"})
    assert (r.status_code, r.json()["code"]) == (403, "ANONYMOUS_LINKING_DISABLED")
    r = await b.post("/anonymous/link", {"email": "ada@example.com", "password": "correct-horse"})
    assert r.status_code == 403
    # Signing up from the guest session is a plain sign-up: no on_link, the guest stays.
    r = await b.sign_up()
    assert r.status_code == 200
    assert rec.calls == []
    # The guest is still a guest, with its session, and still owns its cart.
    [(still_guest,)] = env.db.rows('SELECT "isAnonymous" FROM "user" WHERE "id" = ?', g["id"])
    assert still_guest in (1, True)
    assert env.db.rows('SELECT COUNT(*) FROM "session" WHERE "userId" = ?', g["id"]) == [(1,)]
    assert env.db.rows('SELECT "user_id" FROM "cart"') == [(g["id"],)]


async def test_linking_still_converts_by_default(env, browser_for):
    cart_table(env)
    rec = Recorder()
    b = browser_for(env.make(plugins=[anonymous(rec)]))
    g = (await guest(b))["user"]
    r = await b.sign_up()
    assert rec.calls == [(g["id"], r.json()["user"]["id"])]


# --- 2. guest session lifetime ---------------------------------------------------------------


async def test_guest_sessions_have_their_own_lifetime(env, browser_for):
    auth = env.make(plugins=[anonymous(expires_in=30 * DAY)])
    b = browser_for(auth)
    r = await b.post("/sign-in/anonymous", {})
    assert f"Max-Age={30 * DAY}" in set_cookies(r)["better-auth.session_token"]
    s = (await b.session())["session"]
    lifetime = parse_iso(s["expiresAt"]) - parse_iso(s["createdAt"])
    assert abs(lifetime.total_seconds() - 30 * DAY) < 5
    # Registered users keep session.expires_in.
    u = browser_for(auth)
    r = await u.sign_up()
    assert f"Max-Age={7 * DAY}" in set_cookies(r)["better-auth.session_token"]
    # Refresh extends a guest session by the guest lifetime.
    advance_clock(auth, 2 * DAY)
    r = await b.get("/get-session")
    assert f"Max-Age={30 * DAY}" in set_cookies(r)["better-auth.session_token"]
    s = r.json()["session"]
    assert abs((parse_iso(s["expiresAt"]) - parse_iso(s["updatedAt"])).total_seconds() - 30 * DAY) < 5
    # Past its lifetime the guest session is gone.
    advance_clock(auth, 31 * DAY)
    assert await b.session() is None


async def test_an_upgraded_session_gets_a_registered_lifetime(env, browser_for):
    b = browser_for(env.make(plugins=[anonymous(expires_in=3600)]))
    await guest(b)
    r = await b.post("/anonymous/upgrade", {"email": "ada@example.com", "password": "correct-horse"})
    assert f"Max-Age={7 * DAY}" in set_cookies(r)["better-auth.session_token"]
    s = (await b.session())["session"]
    assert abs((parse_iso(s["expiresAt"]) - parse_iso(s["updatedAt"])).total_seconds() - 7 * DAY) < 5


# --- 3. abuse limits -------------------------------------------------------------------------


STORAGES = ["memory", "database"]


def limited(env, storage: str, **plugin):
    return env.make(
        rate_limit=RateLimitOptions(enabled=True, storage=storage),
        advanced={"trusted_proxies": ["127.0.0.1"]} if plugin.pop("trusted", False) else {},
        plugins=[anonymous(**plugin)],
    )


async def sign_ins(b: Browser, n: int, **headers) -> list[int]:
    codes = []
    for _ in range(n):
        b.cookies.clear()
        b.client.cookies.clear()
        r = await b.post("/sign-in/anonymous", {}, headers=headers)
        codes.append(r.status_code)
        if r.status_code == 429:
            assert r.json() == {"message": "Too many requests. Please try again later."}
            assert 1 <= int(r.headers["x-retry-after"]) <= 60
    return codes


@pytest.mark.parametrize("storage", STORAGES)
async def test_eleventh_guest_sign_in_in_a_minute_gets_429(env, browser_for, storage):
    events = Events()
    auth = limited(env, storage, trusted=True, on_event=events)
    b = browser_for(auth)
    assert await sign_ins(b, 11, **{"x-forwarded-for": "203.0.113.7"}) == [200] * 10 + [429]
    assert env.db.count("user") == 10
    # The window runs from the last allowed request, and a denied one leaves the bucket as
    # it was (spec §12): refused a second before the minute is up, allowed right after.
    advance_clock(auth, 59)
    assert await sign_ins(b, 1, **{"x-forwarded-for": "203.0.113.7"}) == [429]
    advance_clock(auth, 1)
    assert await sign_ins(b, 1, **{"x-forwarded-for": "203.0.113.7"}) == [200]
    # Another IP has its own bucket.
    assert await sign_ins(b, 1, **{"x-forwarded-for": "198.51.100.1"}) == [200]
    # IPv6 clients are keyed by their /64.
    assert await sign_ins(b, 10, **{"x-forwarded-for": "2001:db8:1:2::1"}) == [200] * 10
    assert await sign_ins(b, 1, **{"x-forwarded-for": "2001:db8:1:2:ffff::9"}) == [429]
    refused = await events.wait_for("rate_limited", 3)
    assert [(e["ip"], e["path"], e["user_id"]) for e in refused[:2]] == [
        ("203.0.113.7", "/sign-in/anonymous", None)
    ] * 2
    assert refused[2]["ip"] == "2001:0db8:0001:0002:0000:0000:0000:0000"
    await events.wait_for("created", 22)  # every event delivered before the test's loop ends


@pytest.mark.parametrize("storage", STORAGES)
async def test_a_spoofed_forwarded_for_does_not_change_the_bucket(env, browser_for, storage):
    b = browser_for(limited(env, storage))
    codes = []
    for i in range(11):
        codes += await sign_ins(b, 1, **{"x-forwarded-for": f"10.0.0.{i}"})
    assert codes == [200] * 10 + [429]


async def test_guest_rate_limit_is_configurable(env, browser_for):
    b = browser_for(limited(env, "memory", rate_limit=RateLimitRule(window=30, max=2)))
    assert await sign_ins(b, 3) == [200, 200, 429]
    b = browser_for(limited(env, "memory", rate_limit=False))
    assert await sign_ins(b, 15) == [200] * 15


def test_rate_limit_options_are_checked(tmp_path):
    with pytest.raises(TypeError, match="rate_limit"):
        anonymous(rate_limit="10/min")
    with pytest.raises(ValueError, match="positive"):
        anonymous(rate_limit=RateLimitRule(window=0, max=5))
    with pytest.raises(ConfigurationError, match="storage"):
        init(
            KerniaOptions(
                database=f"sqlite:///{tmp_path / 'a.db'}",
                secret=SECRET,
                rate_limit=RateLimitOptions(storage="redis"),
            )
        )


SERVE = Path(__file__).with_name("serve_guests.py")


def start_process(url: str, storage: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, str(SERVE), url, storage], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("http://"), line
    return proc, line.strip()


@pytest.mark.parametrize("storage", STORAGES)
async def test_database_storage_holds_across_two_processes(env, storage):
    env.make()  # the schema
    procs = [start_process(env.db.url, storage) for _ in range(2)]
    try:
        browsers = [Browser(url) for _, url in procs]
        codes = []
        for i in range(11):
            codes += await sign_ins(browsers[i % 2], 1)
        for b in browsers:
            await b.aclose()
    finally:
        for proc, _ in procs:
            proc.terminate()
            proc.wait(timeout=10)
    if storage == "database":
        assert codes == [200] * 10 + [429]
    else:  # each process counts alone
        assert codes == [200] * 11


# --- 4. stale-guest cleanup ------------------------------------------------------------------


async def test_cleanup_deletes_exactly_the_stale_guests(env, browser_for):
    cart_table(env)
    events = Events()
    auth = env.make(plugins=[anonymous(max_age=DAY, on_event=events)])
    stale = [(await guest(browser_for(auth)))["user"]["id"] for _ in range(5)]
    registered = browser_for(auth)
    old_user = (await registered.sign_up()).json()["user"]["id"]
    returning = browser_for(auth)
    back = (await guest(returning))["user"]["id"]
    advance_clock(auth, DAY + 60)
    # The returning guest comes back: its session is refreshed (update_age is a day).
    assert (await returning.session())["user"]["id"] == back
    fresh = (await guest(browser_for(auth)))["user"]["id"]

    dry = await auth.api.cleanup_anonymous_users(dry_run=True)
    assert dry == {"stale": 5, "deleted": 5, "kept": 0, "failed": 0, "dry_run": True}
    assert env.db.count("user") == 8

    report = await auth.api.cleanup_anonymous_users(batch_size=2)
    assert report == {"stale": 5, "deleted": 5, "kept": 0, "failed": 0, "dry_run": False}
    left = {r[0] for r in env.db.rows('SELECT "id" FROM "user"')}
    assert left == {old_user, back, fresh}
    assert env.db.rows('SELECT count(*) FROM "session" WHERE "userId" IN (?, ?, ?, ?, ?)', *stale) == [(0,)]
    cleaned = await events.wait_for("cleaned_up", 5)
    assert {e["user_id"] for e in cleaned} == set(stale)
    assert (await auth.api.cleanup_anonymous_users())["stale"] == 0


async def test_cleanup_hooks_keep_and_reassign(env, browser_for):
    cart_table(env)
    keep_ids: set[str] = set()

    def should_delete(user):
        return user["id"] not in keep_ids

    async def before_delete(user, ctx):
        sql = 'UPDATE "cart" SET "user_id" = {} WHERE "user_id" = {}'.format(
            *(("$1", "$2") if ctx.db.dialect == "postgres" else ("?", "?"))
        )
        await ctx.db.execute(sql, ["archive", user["id"]])
        if user["name"] == "Boom":
            raise RuntimeError("cannot archive")

    names = iter(["Keep", "Move", "Boom"])
    auth = env.make(
        plugins=[
            anonymous(
                max_age=60,
                should_delete=should_delete,
                before_delete=before_delete,
                generate_name=lambda ctx: next(names),
            )
        ]
    )
    ids = {}
    for _ in range(3):
        u = (await guest(browser_for(auth)))["user"]
        ids[u["name"]] = u["id"]
        add_cart_item(env, u["id"], u["name"])
    keep_ids.add(ids["Keep"])
    advance_clock(auth, 120)
    report = await auth.api.cleanup_anonymous_users()
    assert report == {"stale": 3, "deleted": 1, "kept": 1, "failed": 1, "dry_run": False}
    left = {r[0] for r in env.db.rows('SELECT "id" FROM "user"')}
    assert left == {ids["Keep"], ids["Boom"]}
    carts = dict(env.db.rows('SELECT "item", "user_id" FROM "cart"'))
    # Move's cart was reassigned in the deleting transaction; Boom's reassignment rolled back.
    assert carts == {"Keep": ids["Keep"], "Move": "archive", "Boom": ids["Boom"]}


@pytest.mark.parametrize("hooked", [False, True], ids=["bulk-delete", "before_delete"])
async def test_cleanup_keeps_a_guest_who_came_back_after_it_was_picked(env, browser_for, hooked):
    # Cleanup picks the stale guests, then asks should_delete about each; a guest who
    # returns in between (its session refreshed) must be kept: the deleting transaction
    # checks staleness again.
    returning: dict[str, object] = {}
    before_deletes: list[str] = []

    async def should_delete(user):
        if user["id"] == returning["id"]:
            r = await returning["browser"].get("/get-session")
            assert r.status_code == 200 and "set-cookie" in r.headers  # refreshed: not stale now
        return True

    async def before_delete(user, ctx):
        before_deletes.append(user["id"])

    hooks = {"before_delete": before_delete} if hooked else {}
    auth = env.make(plugins=[anonymous(max_age=2 * DAY, should_delete=should_delete, **hooks)])
    gone = (await guest(browser_for(auth)))["user"]["id"]
    returning["browser"] = browser_for(auth)
    returning["id"] = (await guest(returning["browser"]))["user"]["id"]
    advance_clock(auth, 2 * DAY + 60)
    report = await auth.api.cleanup_anonymous_users()
    assert report == {"stale": 2, "deleted": 1, "kept": 1, "failed": 0, "dry_run": False}
    assert {r[0] for r in env.db.rows('SELECT "id" FROM "user"')} == {returning["id"]}
    assert (await returning["browser"].session())["user"]["id"] == returning["id"]
    env.db.assert_gone(gone)
    if hooked:
        assert sorted(before_deletes) == sorted([gone, returning["id"]])


async def test_two_cleanups_at_once_delete_each_guest_once(env, browser_for):
    # Two processes sweeping one database. While the first holds a guest inside
    # before_delete (its row locked by ctx.db), the second runs: on PostgreSQL it skips
    # the locked guest and deletes the rest without waiting; on SQLite (one writer) it
    # waits for the first. Either way each guest is deleted once, by one of them.
    cart_table(env)
    events = Events()
    holding, release = threading.Event(), threading.Event()

    async def before_delete(user, ctx):
        if not holding.is_set():
            await ctx.db.execute(move_cart_sql(ctx), ["archive", user["id"]])
            holding.set()
            await asyncio.to_thread(release.wait, 10)

    first = env.make(plugins=[anonymous(max_age=60, before_delete=before_delete, on_event=events)])
    second = env.make(plugins=[anonymous(max_age=60, on_event=events)])
    ids = {(await guest(browser_for(first)))["user"]["id"] for _ in range(6)}
    for auth in (first, second):
        advance_clock(auth, 120)
    one = asyncio.ensure_future(first.api.cleanup_anonymous_users(batch_size=2))
    assert await asyncio.to_thread(holding.wait, 10), "the first cleanup never reached before_delete"
    two = asyncio.ensure_future(second.api.cleanup_anonymous_users())
    done, _ = await asyncio.wait({two}, timeout=10.0 if env.backend == "postgres" else 1.0)
    release.set()
    if env.backend == "postgres":
        assert done, "the second cleanup waited for the first one's locked guest"
    else:
        assert not done, "the second cleanup wrote while the first held the database"
    reports = [await one, await two]
    assert sum(r["deleted"] for r in reports) == 6 and sum(r["failed"] for r in reports) == 0
    if env.backend == "postgres":
        assert reports[1] == {"stale": 6, "deleted": 5, "kept": 1, "failed": 0, "dry_run": False}
        assert reports[0]["deleted"] == 1
    assert env.db.count("user") == 0
    cleaned = await events.wait_for("cleaned_up", 6)
    assert sorted(e["user_id"] for e in cleaned) == sorted(ids)  # each once


async def test_cancelling_a_cleanup_stops_it_and_rolls_back_the_guest_in_hand(env, browser_for):
    # Cancelling the awaitable drops the engine's work: the transaction deleting the guest
    # whose before_delete was running is rolled back, and no further guest is touched.
    entered, release = asyncio.Event(), asyncio.Event()
    calls = []

    async def before_delete(user, ctx):
        calls.append(user["id"])
        entered.set()
        await release.wait()

    auth = env.make(plugins=[anonymous(max_age=60, before_delete=before_delete)])
    ids = {(await guest(browser_for(auth)))["user"]["id"] for _ in range(3)}
    advance_clock(auth, 120)
    cleanup = asyncio.ensure_future(auth.api.cleanup_anonymous_users())
    await asyncio.wait_for(entered.wait(), 10)
    cleanup.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await cleanup
    assert len(calls) == 1
    assert {r[0] for r in env.db.rows('SELECT "id" FROM "user"')} == ids
    # A second cleanup deletes all three, each through before_delete once: had the
    # cancelled one gone on, it would have called before_delete again or deleted a guest
    # this one then finds gone.
    entered.clear()
    report = await auth.api.cleanup_anonymous_users()
    assert report == {"stale": 3, "deleted": 3, "kept": 0, "failed": 0, "dry_run": False}
    assert sorted(calls[1:]) == sorted(ids) and len(calls) == 4
    assert env.db.count("user") == 0


async def test_cleanup_needs_a_max_age(env):
    auth = env.make(plugins=[anonymous()])
    with pytest.raises(ConfigurationError, match="max_age"):
        await auth.api.cleanup_anonymous_users()
    assert (await auth.api.cleanup_anonymous_users(max_age=60))["stale"] == 0
    with pytest.raises(ConfigurationError, match="anonymous"):
        await env.make().api.cleanup_anonymous_users(max_age=60)


async def test_cleanup_command(env, browser_for):
    auth = env.make(plugins=[anonymous()])
    for _ in range(3):
        await guest(browser_for(auth))
    await browser_for(auth).sign_up()
    # The command runs in its own process, on the real clock: the guests are made stale by
    # dating their last activity an hour back rather than by waiting.
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    old = an_hour_ago if env.backend == "postgres" else an_hour_ago.isoformat(timespec="milliseconds")
    for table, user in (("user", '"id"'), ("session", '"userId"')):
        env.db.execute(
            f'UPDATE "{table}" SET "updatedAt" = ? WHERE {user} IN (SELECT "id" FROM "user" WHERE "isAnonymous")',
            old.replace("+00:00", "Z") if isinstance(old, str) else old,
        )
    cmd = [
        sys.executable,
        "-m",
        "kernia.cli",
        "cleanup-anonymous",
        "--database",
        env.db.url,
        "--max-age",
        "1",
    ]
    dry = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["deleted"] == 3 and env.db.count("user") == 4
    assert "would delete 3" in dry.stderr
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"stale": 3, "deleted": 3, "kept": 0, "failed": 0, "dry_run": False}
    assert env.db.count("user") == 1
    bad = subprocess.run([*cmd[:-1], "soon"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not a duration" in bad.stderr


async def until_no_users(env) -> None:
    # The sweeper runs on its own schedule, in real time: nothing to await but its effect.
    await eventually(lambda: env.db.count("user") == 0, "the sweeper to delete the guest")


async def test_the_sweeper_runs_on_its_own(env):
    auth = env.make(plugins=[anonymous(max_age=1, cleanup_interval=0.2)])
    with auth.start_server(port=0) as server:
        b = Browser(server.url)
        await guest(b)
        await b.aclose()
        await until_no_users(env)


async def test_the_sweeper_runs_in_the_asgi_servers_loop(env):
    auth = env.make(plugins=[anonymous(max_age=1, cleanup_interval=0.2)])
    b = Browser(auth.router.mount())
    await guest(b)  # the first request starts the sweeper in this event loop
    await b.aclose()
    await until_no_users(env)
    auth.close()  # stops the sweeper too
    await asyncio.sleep(0)


def test_sweeper_options_are_checked():
    with pytest.raises(ValueError, match="max_age"):
        anonymous(cleanup_interval=60)
    with pytest.raises(TypeError, match="max_age"):
        anonymous(max_age="30d")
    with pytest.raises(ValueError, match="positive"):
        anonymous(expires_in=0)


# --- 5. events and admin ---------------------------------------------------------------------


async def test_events_for_each_step_of_a_guests_life(env, browser_for):
    events = Events()
    auth = env.make(plugins=[anonymous(on_event=events)], advanced={"trusted_proxies": ["127.0.0.1"]})
    ip = {"x-forwarded-for": "203.0.113.5"}
    now = datetime.now(UTC)
    before = now.replace(microsecond=now.microsecond // 1000 * 1000)  # events carry milliseconds

    a = browser_for(auth)
    ga = (await a.post("/sign-in/anonymous", {}, headers=ip)).json()["user"]["id"]
    b = browser_for(auth)
    gb = (await guest(b))["user"]["id"]
    c = browser_for(auth)
    gc = (await guest(c))["user"]["id"]
    await a.post("/anonymous/upgrade", {"email": "a@example.com", "password": "correct-horse"}, headers=ip)
    new_b = (await b.sign_up("b@example.com")).json()["user"]["id"]
    await c.post("/delete-anonymous-user", {})

    [created_a] = [e for e in await events.wait_for("created", 3) if e["user_id"] == ga]
    assert created_a["ip"] == "203.0.113.5" and created_a["path"] == "/sign-in/anonymous"
    assert before <= created_a["time"] <= datetime.now(UTC)
    [upgraded] = await events.wait_for("upgraded")
    assert (upgraded["user_id"], upgraded["ip"], upgraded["path"]) == (
        ga,
        "203.0.113.5",
        "/anonymous/upgrade",
    )
    [linked] = await events.wait_for("linked")
    assert (linked["user_id"], linked["new_user_id"], linked["path"]) == (gb, new_b, "/sign-up/email")
    [deleted] = await events.wait_for("deleted")
    assert deleted["user_id"] == gc


async def test_a_failing_on_event_never_breaks_the_request(env, browser_for, caplog):
    events = Events(fail=True)
    b = browser_for(env.make(plugins=[anonymous(on_event=events)]))
    r = await b.post("/sign-in/anonymous", {})
    assert r.status_code == 200
    await events.wait_for("created")
    record = await eventually(
        lambda: next((r for r in caplog.records if "on_event raised" in r.getMessage()), None),
        "the on_event failure on the kernia logger",
    )
    assert (record.name, record.levelname) == ("kernia", "ERROR")
    assert "the audit log is down" in str(record.exc_info[1])


async def test_sync_on_event(env, browser_for):
    seen: list[str] = []
    b = browser_for(env.make(plugins=[anonymous(on_event=lambda e: seen.append(e["type"]))]))
    await guest(b)
    await eventually(lambda: seen, "the created event")
    assert seen == ["created"]


async def test_list_and_count_users(env, browser_for):
    auth = env.make(plugins=[anonymous()])
    guests = [(await guest(browser_for(auth)))["user"]["id"] for _ in range(3)]
    advance_clock(auth, 0.01)  # the user is surely newer than the guests
    user = (await browser_for(auth).sign_up()).json()["user"]["id"]
    assert await auth.api.count_users() == 4
    assert await auth.api.count_users(is_anonymous=True) == 3
    assert await auth.api.count_users(is_anonymous=False) == 1
    # Newest first; guests made within one millisecond are in id order (the tie-break).
    newest_first = [
        row[0]
        for row in env.db.rows(
            'SELECT "id" FROM "user" WHERE "isAnonymous" ORDER BY "createdAt" DESC, "id" DESC'
        )
    ]
    assert sorted(newest_first) == sorted(guests)
    listed = await auth.api.list_users(is_anonymous=True, limit=2)
    assert [u["id"] for u in listed] == newest_first[:2]
    assert all(u["isAnonymous"] for u in listed)
    assert [u["id"] for u in await auth.api.list_users(is_anonymous=True, limit=2, offset=2)] == newest_first[
        2:
    ]
    assert [u["id"] for u in await auth.api.list_users(is_anonymous=False)] == [user]
    assert (await auth.api.list_users())[0]["id"] == user
    with pytest.raises(ValueError):
        await auth.api.list_users(limit=-1)


async def test_the_sweeper_logs_its_runs_and_survives_a_failing_one(caplog):
    # A run that raises is logged with its traceback on the kernia logger, and the next
    # run still comes; a run that deleted guests is logged at INFO with its report.
    import logging

    from kernia.auth.sweeper import Sweeper

    caplog.set_level(logging.INFO, logger="kernia")
    runs: list[int] = []
    second_run = asyncio.Event()

    async def cleanup():
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("the database went away")
        second_run.set()
        return {"stale": 2, "deleted": 2, "kept": 0, "failed": 0, "dry_run": False}

    sweeper = Sweeper(cleanup, 0.01)
    sweeper.ensure_started()
    try:
        await asyncio.wait_for(second_run.wait(), 10)
        await eventually(lambda: len(caplog.records) >= 2, "the second run's log line")
    finally:
        sweeper.stop()
    failed, done = caplog.records[:2]
    assert (failed.name, failed.levelname) == ("kernia", "ERROR")
    assert failed.getMessage() == "kernia: stale-guest cleanup failed; the next run is in 0.01s"
    assert str(failed.exc_info[1]) == "the database went away"
    assert (done.name, done.levelname) == ("kernia", "INFO")
    assert "'deleted': 2" in done.getMessage()
