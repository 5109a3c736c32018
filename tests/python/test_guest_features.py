"""Guests beyond Better Auth's plugin: a guest reused instead of refused, a resume token for
apps that lose their cookies, a gate before a guest is created, and routes for registered
users only. On SQLite and PostgreSQL, through ASGI and the native server."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Depends, FastAPI
from helpers import guest

from kernia import APIError, RateLimitOptions, RateLimitRule
from kernia.integrations.fastapi import session_dependency
from kernia.plugins.anonymous import anonymous

from conftest import Browser


async def test_a_guest_signing_in_again_is_the_same_guest_with_reuse_existing(env, browser_for):
    auth = env.make(plugins=[anonymous(reuse_existing=True)])
    b = browser_for(auth)
    first = await guest(b)
    cookie = b.cookies["better-auth.session_token"]
    again = await b.post("/sign-in/anonymous", {})
    assert again.status_code == 200, again.text
    assert again.json()["user"] == first["user"] and again.json()["token"] == first["token"]
    assert b.cookies["better-auth.session_token"] == cookie
    assert env.db.rows('SELECT count(*) FROM "user"') == [(1,)]
    assert env.db.rows('SELECT count(*) FROM "session"') == [(1,)]
    # Without the option, Better Auth's answer.
    plain = browser_for(env.make(plugins=[anonymous()]))
    await guest(plain)
    refused = await plain.post("/sign-in/anonymous", {})
    assert refused.status_code == 400
    assert refused.json()["code"] == "ANONYMOUS_USERS_CANNOT_SIGN_IN_AGAIN_ANONYMOUSLY"


async def test_a_resume_token_brings_the_same_guest_back_and_is_spent(env, browser_for):
    auth = env.make(plugins=[anonymous(resume=True)])
    b = browser_for(auth)
    created = await guest(b)
    token = created["resumeToken"]
    guest_id = created["user"]["id"]
    assert len(token) >= 40
    # Stored hashed: the token itself is nowhere in the database.
    assert env.db.rows("SELECT count(*) FROM verification WHERE value = ?", guest_id) == [(1,)]
    assert not [r for r in env.db.rows("SELECT identifier FROM verification") if token in r[0]]

    lost = browser_for(auth)  # a reinstalled app: no cookies
    resumed = await lost.post("/anonymous/resume", {"resumeToken": token})
    assert resumed.status_code == 200, resumed.text
    body = resumed.json()
    assert body["user"]["id"] == guest_id and body["user"]["isAnonymous"] is True
    assert body["token"] != created["token"] and body["resumeToken"] != token
    assert (await lost.session())["user"]["id"] == guest_id
    # The old token is spent; the new one works once.
    again = await browser_for(auth).post("/anonymous/resume", {"resumeToken": token})
    assert again.status_code == 401 and again.json()["code"] == "INVALID_RESUME_TOKEN"
    assert (
        await browser_for(auth).post("/anonymous/resume", {"resumeToken": body["resumeToken"]})
    ).status_code == 200
    bad = await browser_for(auth).post("/anonymous/resume", {"resumeToken": 5})
    assert bad.status_code == 400 and bad.json()["code"] == "VALIDATION_ERROR"


async def test_a_converted_or_upgraded_guests_resume_token_fails(env, browser_for):
    auth = env.make(plugins=[anonymous(resume=True)])
    b = browser_for(auth)
    token = (await guest(b))["resumeToken"]
    assert (await b.sign_up()).status_code == 200  # converted: the guest is deleted
    gone = await browser_for(auth).post("/anonymous/resume", {"resumeToken": token})
    assert gone.status_code == 401 and gone.json()["code"] == "INVALID_RESUME_TOKEN"

    upgrading = browser_for(auth)
    token = (await guest(upgrading))["resumeToken"]
    up = await upgrading.post(
        "/anonymous/upgrade", {"email": "grace@example.com", "password": "correct-horse"}
    )
    assert up.status_code == 200, up.text
    upgraded = await browser_for(auth).post("/anonymous/resume", {"resumeToken": token})
    assert upgraded.status_code == 403 and upgraded.json()["code"] == "GUEST_ALREADY_CONVERTED"
    # Without resume=True the route is not there.
    off = browser_for(env.make(plugins=[anonymous()]))
    assert (await off.post("/anonymous/resume", {"resumeToken": token})).status_code == 404


async def test_resuming_is_rate_limited_like_guest_creation(env, browser_for):
    auth = env.make(
        plugins=[anonymous(resume=True, rate_limit=RateLimitRule(window=60, max=2))],
        rate_limit=RateLimitOptions(enabled=True),
    )
    b = browser_for(auth)
    statuses = [(await b.post("/anonymous/resume", {"resumeToken": "x" * 43})).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]


async def test_before_create_sees_the_request_and_can_refuse_with_nothing_written(env, browser_for):
    seen: list[dict[str, Any]] = []

    async def before_create(ctx):
        seen.append(
            {"body": ctx.request.body, "ip": ctx.request.client_ip, "ua": ctx.request.headers["user-agent"]}
        )
        if ctx.request.body.get("captcha") != "ok":
            raise APIError(403, "CAPTCHA_FAILED", "Prove you are human")

    auth = env.make(plugins=[anonymous(before_create=before_create)])
    b = browser_for(auth)
    refused = await b.post("/sign-in/anonymous", {"captcha": "bot"}, headers={"user-agent": "bot/1"})
    assert refused.status_code == 403
    assert refused.json() == {"code": "CAPTCHA_FAILED", "message": "Prove you are human"}
    assert "better-auth.session_token" not in b.cookies
    assert env.db.rows('SELECT count(*) FROM "user"') == [(0,)]
    assert env.db.rows('SELECT count(*) FROM "session"') == [(0,)]
    ok = await b.post("/sign-in/anonymous", {"captcha": "ok"}, headers={"user-agent": "shop/1"})
    assert ok.status_code == 200, ok.text
    assert seen[0]["body"] == {"captcha": "bot"} and seen[1]["ua"] == "shop/1" and seen[1]["ip"]

    def sync_gate(ctx):
        raise APIError(429, "TOO_MANY_GUESTS", "Try again later")

    gated = browser_for(env.make(plugins=[anonymous(before_create=sync_gate)]))
    assert (await gated.post("/sign-in/anonymous", {})).json()["code"] == "TOO_MANY_GUESTS"
    with pytest.raises(TypeError, match="before_create"):
        anonymous(before_create="nope")


async def test_registered_only_routes_refuse_guests(env):
    auth = env.make(plugins=[anonymous()])
    app = FastAPI()
    app.mount("/api/auth", auth.router.mount())

    registered, anyone = session_dependency(auth, allow_guests=False), session_dependency(auth)

    @app.get("/checkout")
    async def checkout(s=Depends(registered)):
        return {"user": s["user"]["id"], "is_anonymous": s["is_anonymous"]}

    @app.get("/cart")
    async def cart(s=Depends(anyone)):
        return {"is_anonymous": s["is_anonymous"]}

    b = Browser(app)
    await guest(b)
    assert (await b.client.get("/cart")).json() == {"is_anonymous": True}
    refused = await b.client.get("/checkout")
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("GUEST_NOT_ALLOWED: ")
    headers = b.headers()
    with pytest.raises(APIError) as raised:
        await auth.api.get_session(headers, allow_guests=False)
    assert (raised.value.status, raised.value.code) == (403, "GUEST_NOT_ALLOWED")
    assert (await auth.api.get_session(headers))["user"]["isAnonymous"] is True
    await b.sign_up()
    done = await b.client.get("/checkout")
    assert done.status_code == 200 and done.json()["is_anonymous"] is False
    await b.aclose()
    with pytest.raises(TypeError, match="allow_guests"):
        await auth.api.get_session(headers, allow_guests="no")


async def test_kernias_helpers_mark_guests_and_refuse_them_on_registered_routes(env):
    from kernia_fastapi import mount_kernia, require_registered, require_session

    auth = env.make(plugins=[anonymous()])
    app = FastAPI()
    mount_kernia(app, auth)

    @app.get("/me")
    async def me(session=Depends(require_session)):
        return {"is_anonymous": session.is_anonymous}

    @app.get("/billing")
    async def billing(session=Depends(require_registered)):
        return {"user_id": session.user_id}

    b = Browser(app)
    await guest(b)
    assert (await b.client.get("/me")).json() == {"is_anonymous": True}
    assert (await b.client.get("/billing")).status_code == 403
    await b.sign_up()
    assert (await b.client.get("/billing")).status_code == 200
    await b.aclose()


def test_the_new_guest_options_are_checked():
    with pytest.raises(TypeError, match="reuse_existing"):
        anonymous(reuse_existing="yes")
    with pytest.raises(TypeError, match="resume"):
        anonymous(resume=1)


async def test_guest_stats_match_a_scripted_history_and_survive_a_restart(env, browser_for):
    from kernia.plugins.username import username
    from kernia.testing import advance_clock, freeze_clock

    from conftest import parse_iso

    def make():
        return env.make(plugins=[anonymous(max_age=86_400), username()])

    auth = make()
    freeze_clock(auth)  # times to conversion exact to the millisecond
    # E: a guest left alone until the cleanup takes it.
    await guest(browser_for(auth))
    advance_clock(auth, 2 * 86_400)
    assert (await auth.api.cleanup_anonymous_users())["deleted"] == 1
    bob = browser_for(auth)
    await bob.sign_up("bob@example.com", username="bob")
    # A, B, C, D, F: created together.
    a, b, c, d, f = (browser_for(auth) for _ in range(5))
    created = [await guest(x) for x in (a, b, c, d, f)]
    since = parse_iso(created[0]["user"]["createdAt"])
    advance_clock(auth, 100)
    assert (await a.sign_up("ada@example.com")).status_code == 200  # converted by email after 100 s
    advance_clock(auth, 100)
    signed = await b.post("/sign-in/username", {"username": "bob", "password": "correct-horse"})
    assert signed.status_code == 200, signed.text  # converted by username after 200 s
    advance_clock(auth, 100)
    up = await c.post("/anonymous/upgrade", {"email": "cy@example.com", "password": "correct-horse"})
    assert up.status_code == 200  # upgraded in place after 300 s
    assert (await d.post("/delete-anonymous-user", {})).status_code == 200
    expected = {
        "created": 6,
        "active": 1,
        "converted": 2,
        "converted_by_method": {"email": 1, "username": 1},
        "upgraded": 1,
        "deleted_by_guest": 1,
        "cleaned_up": 1,
        "conversion_rate": 0.5,
        "median_seconds_to_conversion": 200.0,
    }
    assert await auth.api.guest_stats() == expected
    recent = await auth.api.guest_stats(since=since)
    assert recent == {**expected, "created": 5, "cleaned_up": 0, "conversion_rate": 0.6}
    assert (await auth.api.guest_stats(since=since.timestamp() + 1))["created"] == 0
    # Counted from the database: another engine on it, or a restart, sees the same.
    assert await make().api.guest_stats() == expected
    with pytest.raises(TypeError, match="since"):
        await auth.api.guest_stats(since="yesterday")


async def test_guests_of_a_database_from_before_the_funnel_are_counted(env, browser_for):
    auth = env.make(plugins=[anonymous()])
    for _ in range(2):
        await guest(browser_for(auth))
    env.db.execute('DROP TABLE "guestFunnel"')
    auth.close()
    reopened = env.make(plugins=[anonymous()])
    stats = await reopened.api.guest_stats()
    assert (stats["created"], stats["active"], stats["conversion_rate"]) == (2, 2, 0.0)
    again = env.make(plugins=[anonymous()])
    assert (await again.api.guest_stats())["created"] == 2
    empty = await env.make(plugins=[anonymous()]).api.guest_stats(since=4_000_000_000)
    assert empty["created"] == 0 and empty["conversion_rate"] is None
    assert empty["median_seconds_to_conversion"] is None
