"""get-session and sign-out (spec §11): refresh, expiry, and cookies that must not work."""

from __future__ import annotations

import pytest

from kernia import SessionOptions
from kernia.testing import advance_clock

from conftest import parse_iso, set_cookies

DAY = 86400


async def test_get_session_signed_out_is_null_with_no_store(env, browser_for):
    r = await browser_for(env.make()).get("/get-session")
    assert r.status_code == 200 and r.text == "null"
    assert r.headers["cache-control"] == "no-store" and r.headers["pragma"] == "no-cache"
    assert "set-cookie" not in r.headers


async def test_session_is_not_refreshed_before_update_age(env, browser_for):
    auth = env.make()
    b = browser_for(auth)
    await b.sign_up()
    advance_clock(auth, DAY - 60)
    r = await b.get("/get-session")
    assert "set-cookie" not in r.headers


async def test_session_is_refreshed_after_update_age(env, browser_for):
    auth = env.make()
    b = browser_for(auth)
    await b.sign_up()
    first = (await b.session())["session"]
    advance_clock(auth, DAY + 60)
    r = await b.get("/get-session")
    refreshed = r.json()["session"]
    assert parse_iso(refreshed["expiresAt"]) > parse_iso(first["expiresAt"])
    assert "Max-Age=604800" in set_cookies(r)["better-auth.session_token"]
    [(stored,)] = env.db.rows('SELECT "expiresAt" FROM "session"')
    stored_text = stored if isinstance(stored, str) else stored.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assert stored_text == refreshed["expiresAt"]


async def test_disable_refresh_query_and_option(env, browser_for):
    auth = env.make(session=SessionOptions(disable_session_refresh=True))
    b = browser_for(auth)
    await b.sign_up()
    [(before,)] = env.db.rows('SELECT "expiresAt" FROM "session"')
    advance_clock(auth, 2 * DAY)
    assert "set-cookie" not in (await b.get("/get-session")).headers
    assert env.db.rows('SELECT "expiresAt" FROM "session"') == [(before,)]

    env.db.execute('DELETE FROM "session"')
    auth2 = env.make()
    b2 = browser_for(auth2)
    await b2.sign_up(email="q@example.com")
    [(before,)] = env.db.rows('SELECT "expiresAt" FROM "session"')
    advance_clock(auth2, 2 * DAY)
    # Better Auth reads the query as z.coerce.boolean: any non-empty value, "false" too, skips.
    for value in ("1", "true", "false"):
        r = await b2.get("/get-session", params={"disableRefresh": value})
        assert r.status_code == 200 and r.json()["session"]["expiresAt"] is not None
        assert "set-cookie" not in r.headers, value
        assert env.db.rows('SELECT "expiresAt" FROM "session"') == [(before,)], value
    # Without it the same request refreshes: the cookie and the row move.
    r = await b2.get("/get-session")
    assert "better-auth.session_token" in set_cookies(r)
    assert env.db.rows('SELECT "expiresAt" FROM "session"') != [(before,)]


async def test_update_age_zero_refreshes_every_time(env, browser_for):
    auth = env.make(session=SessionOptions(update_age=0))
    b = browser_for(auth)
    await b.sign_up()
    previous = (await b.session())["session"]
    for _ in range(2):
        # A minute later: the expiry moves a minute on, in the answer, the cookie and the row.
        advance_clock(auth, 60)
        r = await b.get("/get-session")
        current = r.json()["session"]
        moved = parse_iso(current["expiresAt"]) - parse_iso(previous["expiresAt"])
        assert 59 <= moved.total_seconds() <= 61, moved
        assert "Max-Age=604800" in set_cookies(r)["better-auth.session_token"]
        [(stored,)] = env.db.rows('SELECT "expiresAt" FROM "session"')
        stored_text = (
            stored if isinstance(stored, str) else stored.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        )
        assert stored_text == current["expiresAt"]
        previous = current


async def test_expired_session_is_null_expires_cookies_and_deletes_the_row(env, browser_for):
    auth = env.make()
    b = browser_for(auth)
    await b.sign_up()
    advance_clock(auth, 7 * DAY + 1)
    r = await b.get("/get-session")
    assert r.text == "null"
    cookies = set_cookies(r)
    for name in ("better-auth.session_token", "better-auth.session_data", "better-auth.dont_remember"):
        assert "Max-Age=0" in cookies[name]
    assert env.db.count("session") == 0


async def test_custom_expires_in(env, browser_for):
    auth = env.make(session=SessionOptions(expires_in=3600, update_age=600))
    b = browser_for(auth)
    r = await b.sign_up()
    assert "Max-Age=3600" in set_cookies(r)["better-auth.session_token"]
    advance_clock(auth, 3601)
    assert await b.session() is None


@pytest.mark.parametrize(
    "mangle",
    [
        lambda v: v.replace(v[0], "Z" if v[0] != "Z" else "Y", 1),  # token changed, signature kept
        lambda v: v[:-6] + "AAAA%3D",  # signature changed
        lambda v: v.split(".")[0],  # no signature
        lambda v: "garbage",
        lambda v: "%E0%A4%A",  # broken percent-encoding
    ],
)
async def test_tampered_or_malformed_cookies_are_signed_out(env, browser_for, mangle):
    b = browser_for(env.make())
    await b.sign_up()
    b.cookies["better-auth.session_token"] = mangle(b.cookies["better-auth.session_token"])
    r = await b.get("/get-session")
    assert r.status_code == 200 and r.text == "null"


async def test_a_cookie_signed_with_another_secret_is_signed_out(env, browser_for):
    signed = browser_for(env.make())
    await signed.sign_up()
    other = browser_for(env.make(secret="a-completely-different-secret-value-123"))
    other.cookies = dict(signed.cookies)
    assert await other.session() is None


async def test_a_deleted_session_cookie_is_signed_out(env, browser_for):
    b = browser_for(env.make())
    await b.sign_up()
    env.db.execute('DELETE FROM "session"')
    r = await b.get("/get-session")
    assert r.text == "null" and "Max-Age=0" in set_cookies(r)["better-auth.session_token"]


async def test_sign_out_without_a_session_still_succeeds(env, browser_for):
    b = browser_for(env.make())
    r = await b.post("/sign-out", {})
    assert r.status_code == 200 and r.json() == {"success": True}
    assert "Max-Age=0" in set_cookies(r)["better-auth.session_token"]


async def test_sign_out_revokes_only_its_own_session(env, browser_for):
    auth = env.make()
    one, two = browser_for(auth), browser_for(auth)
    await one.sign_up()
    await two.sign_in()
    await one.post("/sign-out", {})
    assert await one.session() is None
    assert (await two.session())["user"]["email"] == "ada@example.com"


async def test_post_get_session_is_405(env, browser_for):
    r = await browser_for(env.make()).post("/get-session", {})
    assert r.status_code == 405 and r.json()["code"] == "METHOD_NOT_ALLOWED_DEFER_SESSION_REQUIRED"


async def test_session_records_ip_and_user_agent(env, browser_for):
    b = browser_for(env.make())
    r = await b.post(
        "/sign-up/email",
        {"name": "A", "email": "ua@example.com", "password": "password123"},
        headers={"user-agent": "pytest-agent/1.0", "x-forwarded-for": "203.0.113.9"},
    )
    assert r.status_code == 200
    s = (await b.session())["session"]
    assert s["userAgent"] == "pytest-agent/1.0"
    # X-Forwarded-For is not believed without trusted proxies: the peer address is used.
    assert s["ipAddress"] == "127.0.0.1"


async def test_forwarded_for_is_believed_from_a_trusted_proxy(env, browser_for):
    b = browser_for(env.make(advanced={"trusted_proxies": ["127.0.0.0/8"]}))
    await b.post(
        "/sign-up/email",
        {"name": "A", "email": "xff@example.com", "password": "password123"},
        headers={"x-forwarded-for": "203.0.113.9, 2001:db8::7"},
    )
    assert (await b.session())["session"]["ipAddress"] == "2001:0db8:0000:0000:0000:0000:0000:0000"


# --- the in-process check (auth.api.get_session) ----------------------------------------------------


def _cookie_pairs(b) -> list[tuple[bytes, bytes]]:
    return [
        (b"host", b"localhost:3000"),
        (b"cookie", b"; ".join(f"{k}={v}".encode() for k, v in b.cookies.items())),
    ]


async def test_the_app_side_check_answers_as_get_session_does(env, browser_for):
    """The same dict as GET /get-session's JSON, for a guest and a registered user."""
    from kernia.plugins.anonymous import anonymous
    from kernia.plugins.username import username

    auth = env.make(plugins=[anonymous(), username()])
    for sign_in in ("guest", "user"):
        b = browser_for(auth)
        if sign_in == "guest":
            await b.post("/sign-in/anonymous", {})
        else:
            await b.post(
                "/sign-up/email",
                {"name": "Ada", "email": "ada@example.com", "password": "correct-horse", "username": "ada_l"},
            )
        over_http = await b.session()
        assert await auth.api.get_session(_cookie_pairs(b)) == over_http
        assert await auth.api.get_session({"cookie": _cookie_pairs(b)[1][1].decode()}) == over_http


async def test_the_check_is_answered_on_the_calling_thread_when_it_can(env, browser_for):
    """A SQLite file answers at once (no awaitable); what needs a write or a network round trip
    is left to the awaitable path: a refresh that is due, an expired row, PostgreSQL."""
    auth = env.make()
    b = browser_for(auth)
    await b.sign_up()
    pairs = _cookie_pairs(b)
    now = auth._native.get_session_now(pairs, True)
    if env.backend == "postgres":
        assert now is NotImplemented
    else:
        assert now == await b.session()
        assert (
            auth._native.get_session_now([(b"cookie", b"better-auth.session_token=forged.sig")], True) is None
        )
        assert auth._native.get_session_now([], True) is None
    # A refresh is due: the awaitable path writes it, as get-session would.
    before = (await auth.api.get_session(pairs))["session"]["expiresAt"]
    advance_clock(auth, DAY + 60)
    assert auth._native.get_session_now(pairs, True) is NotImplemented
    refreshed = (await auth.api.get_session(pairs))["session"]["expiresAt"]
    assert parse_iso(refreshed) > parse_iso(before)
    assert (await b.session())["session"]["expiresAt"] == refreshed  # written, not only answered
    if env.backend == "sqlite":
        assert auth._native.get_session_now(pairs, True) is not NotImplemented  # refreshed: at once again
    # Expired: the row is deleted, by the awaitable path.
    advance_clock(auth, 8 * DAY)
    assert auth._native.get_session_now(pairs, True) is NotImplemented
    assert await auth.api.get_session(pairs) is None
    assert env.db.count("session") == 0


async def test_the_check_refuses_guests_where_asked_on_either_path(env, browser_for):
    from kernia import APIError
    from kernia.plugins.anonymous import anonymous

    auth = env.make(plugins=[anonymous()])
    b = browser_for(auth)
    await b.post("/sign-in/anonymous", {})
    with pytest.raises(APIError) as refused:
        await auth.api.get_session(_cookie_pairs(b), allow_guests=False)
    assert (refused.value.status, refused.value.code) == (403, "GUEST_NOT_ALLOWED")
    advance_clock(auth, DAY + 60)  # now through the awaitable path
    with pytest.raises(APIError):
        await auth.api.get_session(_cookie_pairs(b), allow_guests=False)


async def test_an_in_memory_database_takes_the_awaitable_path(open_auth):
    from kernia import EmailPasswordOptions, KerniaOptions

    from conftest import SECRET, Browser

    auth = open_auth(
        KerniaOptions(
            database="sqlite::memory:", secret=SECRET, email_and_password=EmailPasswordOptions(enabled=True)
        )
    )
    b = Browser(auth.router.mount())
    await b.sign_up()
    assert auth._native.get_session_now(_cookie_pairs(b), True) is NotImplemented
    assert (await auth.api.get_session(_cookie_pairs(b)))["user"]["email"] == "ada@example.com"
    await b.aclose()
