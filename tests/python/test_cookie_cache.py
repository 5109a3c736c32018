"""Better Auth's cookie cache (``session.cookieCache``, spec §2.5, §11.1 step 2): a signed
``session_data`` cookie answers get-session and the app's own checks without the database.

Deleting the session row behind the server's back shows which source answered: the cache
still answers, the database would not."""

from __future__ import annotations

import base64
import json

import pytest
from fastapi import Depends, FastAPI

from kernia import ConfigurationError, SessionOptions
from kernia.integrations.starlette import session_dependency
from kernia.plugins import anonymous
from kernia.testing import advance_clock

from conftest import set_cookies

DATA = "better-auth.session_data"
TOKEN = "better-auth.session_token"
CACHED = SessionOptions(cookie_cache_enabled=True)


def payload(cookie_value: str) -> dict:
    """The compact cookie's JSON: ``{"session": {session, user, updatedAt, version}, "expiresAt", "signature"}``."""
    return json.loads(base64.urlsafe_b64decode(cookie_value + "=" * (-len(cookie_value) % 4)))


async def test_sign_up_writes_the_cache_and_get_session_answers_from_it(env, browser_for):
    auth = env.make(session=CACHED)
    b = browser_for(auth)
    r = await b.sign_up()
    line = set_cookies(r)[DATA]
    assert "; Max-Age=300; Path=/; HttpOnly; SameSite=Lax" in line
    cached = payload(b.cookies[DATA])
    assert list(cached) == ["session", "expiresAt", "signature"]
    assert list(cached["session"]) == ["session", "user", "updatedAt", "version"]
    assert cached["session"]["user"]["email"] == "ada@example.com"
    assert cached["session"]["version"] == "1"
    from_db = await b.session()

    env.db.execute('DELETE FROM "session"')
    r = await b.get("/get-session")
    assert r.status_code == 200 and r.json() == from_db
    assert "set-cookie" not in r.headers
    assert r.headers["cache-control"] == "no-store"

    # disableCookieCache (any non-empty value) reads the database: the row is gone.
    r = await b.get("/get-session", params={"disableCookieCache": "false"})
    assert r.text == "null"
    assert all("Max-Age=0" in set_cookies(r)[name] for name in (TOKEN, DATA))


async def test_without_the_cache_no_cookie_is_written_and_the_database_answers(env, browser_for):
    auth = env.make()
    b = browser_for(auth)
    r = await b.sign_up()
    assert DATA not in set_cookies(r)
    assert DATA not in set_cookies(await b.get("/get-session"))
    env.db.execute('DELETE FROM "session"')
    assert await b.session() is None


async def test_the_cache_is_trusted_for_max_age_then_read_again_from_the_database(env, browser_for):
    auth = env.make(session=SessionOptions(cookie_cache_enabled=True, cookie_cache_max_age=60))
    b = browser_for(auth)
    await b.sign_up()
    first = b.cookies[DATA]
    advance_clock(auth, 59)
    assert "set-cookie" not in (await b.get("/get-session")).headers
    advance_clock(auth, 2)
    r = await b.get("/get-session")
    assert r.json()["user"]["email"] == "ada@example.com"
    # Read from the database, and cached anew.
    assert "Max-Age=60" in set_cookies(r)[DATA] and b.cookies[DATA] != first
    env.db.execute('DELETE FROM "session"')
    assert (await b.session())["user"]["email"] == "ada@example.com"
    advance_clock(auth, 61)
    assert await b.session() is None


async def test_a_cache_of_another_session_or_version_or_a_forged_one_is_not_used(env, browser_for):
    auth = env.make(session=CACHED)
    ada, bob = browser_for(auth), browser_for(auth)
    await ada.sign_up()
    await bob.sign_up(email="bob@example.com")
    # Bob's cache beside Ada's token: expired, and Ada's own session is read and cached.
    ada.cookies[DATA] = bob.cookies[DATA]
    r = await ada.get("/get-session")
    assert r.json()["user"]["email"] == "ada@example.com"
    assert payload(ada.cookies[DATA])["session"]["user"]["email"] == "ada@example.com"

    # A forged cache: the email changed, the signature kept.
    forged = payload(ada.cookies[DATA])
    forged["session"]["user"]["email"] = "eve@example.com"
    ada.cookies[DATA] = base64.urlsafe_b64encode(json.dumps(forged, separators=(",", ":")).encode()).decode()
    r = await ada.get("/get-session")
    assert r.json()["user"]["email"] == "ada@example.com"
    assert "eve" not in json.dumps(payload(ada.cookies[DATA]))

    # Another version (a redeploy with cookie_cache_version changed): the database decides.
    v2 = env.make(session=SessionOptions(cookie_cache_enabled=True, cookie_cache_version="2"))
    env.db.execute(
        'DELETE FROM "session" WHERE "userId" IN (SELECT id FROM "user" WHERE email = ?)', "ada@example.com"
    )
    again = browser_for(v2)
    again.cookies = dict(ada.cookies)
    r = await again.get("/get-session")
    assert r.text == "null"
    assert "Max-Age=0" in set_cookies(r)[DATA]


async def test_a_broken_cache_is_expired_even_with_the_cache_off(env, browser_for):
    auth = env.make()
    b = browser_for(auth)
    await b.sign_up()
    b.cookies[DATA] = "not-a-cache"
    r = await b.get("/get-session")
    assert r.json()["user"]["email"] == "ada@example.com"
    assert "Max-Age=0" in set_cookies(r)[DATA]


async def test_a_refresh_that_is_due_writes_both_cookies(env, browser_for):
    auth = env.make(session=SessionOptions(cookie_cache_enabled=True, update_age=0))
    b = browser_for(auth)
    await b.sign_up()
    advance_clock(auth, 301)
    r = await b.get("/get-session")
    cookies = set_cookies(r)
    assert "Max-Age=604800" in cookies[TOKEN] and "Max-Age=300" in cookies[DATA]
    assert payload(b.cookies[DATA])["session"]["session"]["expiresAt"] == r.json()["session"]["expiresAt"]


async def test_update_user_caches_the_new_profile(env, browser_for):
    auth = env.make(session=CACHED)
    b = browser_for(auth)
    await b.sign_up()
    r = await b.post("/update-user", {"name": "Ada Lovelace", "image": "https://example.com/a.png"})
    assert r.status_code == 200
    assert DATA in set_cookies(r)
    user = (await b.session())["user"]
    assert (user["name"], user["image"]) == ("Ada Lovelace", "https://example.com/a.png")
    assert payload(b.cookies[DATA])["session"]["user"]["name"] == "Ada Lovelace"


async def test_sign_out_expires_the_cache(env, browser_for):
    auth = env.make(session=CACHED)
    b = browser_for(auth)
    await b.sign_up()
    r = await b.post("/sign-out")
    assert "Max-Age=0" in set_cookies(r)[DATA]
    assert await b.session() is None


async def test_a_revoked_session_is_refused_by_every_route_but_get_session(env, browser_for):
    """Better Auth's rule: a session revoked elsewhere answers get-session from its cache until
    the cache is max_age old. Every other route here reads the database, so it cannot act."""
    auth = env.make(session=CACHED)
    b = browser_for(auth)
    await b.sign_up()
    env.db.execute('DELETE FROM "session"')
    assert (await b.session())["user"]["email"] == "ada@example.com"
    r = await b.post("/update-user", {"name": "Mallory"})
    assert r.status_code == 401 and r.json()["code"] == "UNAUTHORIZED"
    # The 401 expired the cookies, the cache with them.
    assert await b.session() is None


async def test_a_guest_upgraded_in_place_is_cached_as_registered(env, browser_for):
    auth = env.make(session=CACHED, plugins=[anonymous()])
    b = browser_for(auth)
    guest = await b.sign_in_as_guest()
    assert payload(b.cookies[DATA])["session"]["user"]["isAnonymous"] is True
    r = await b.post(
        "/anonymous/upgrade", {"email": "ada@example.com", "password": "correct-horse", "name": "Ada"}
    )
    assert r.status_code == 200, r.text
    user = (await b.session())["user"]
    assert (user["id"], user["isAnonymous"], user["email"]) == (guest["id"], False, "ada@example.com")


async def test_a_guest_converting_by_sign_in_gets_the_accounts_cache(env, browser_for):
    auth = env.make(session=CACHED, plugins=[anonymous()])
    await browser_for(auth).sign_up()
    b = browser_for(auth)
    await b.sign_in_as_guest()
    r = await b.sign_in()
    assert r.status_code == 200
    user = (await b.session())["user"]
    assert (user["email"], user["isAnonymous"]) == ("ada@example.com", False)
    assert payload(b.cookies[DATA])["session"]["user"]["email"] == "ada@example.com"


async def test_a_browser_session_cache_has_no_max_age(env, browser_for):
    auth = env.make(session=SessionOptions(cookie_cache_enabled=True, cookie_cache_max_age=3600))
    b = browser_for(auth)
    r = await b.sign_up(rememberMe=False)
    line = set_cookies(r)[DATA]
    assert "Max-Age" not in line
    # Trusted for a minute, as Better Auth's maxAge || 60.
    env.db.execute('DELETE FROM "session"')
    advance_clock(auth, 59)
    assert (await b.session()) is not None
    advance_clock(auth, 2)
    assert await b.session() is None


async def test_stale_chunks_are_expired_when_the_cache_is_written(env, browser_for):
    auth = env.make(session=CACHED)
    b = browser_for(auth)
    await b.sign_up()
    b.cookies[f"{DATA}.0"] = "old"
    b.cookies[f"{DATA}.1"] = "chunks"
    r = await b.get("/get-session", params={"disableCookieCache": "1"})
    cookies = set_cookies(r)
    assert "Max-Age=300" in cookies[DATA]
    assert "Max-Age=0" in cookies[f"{DATA}.0"] and "Max-Age=0" in cookies[f"{DATA}.1"]
    assert len(r.headers.get_list("set-cookie")) == 3
    # Sign-out expires every session cookie and every chunk the request carries (spec §2.4).
    b.cookies[f"{DATA}.0"] = "old"
    r = await b.post("/sign-out")
    expired = {name for name, line in set_cookies(r).items() if "Max-Age=0" in line}
    assert expired == {TOKEN, DATA, "better-auth.dont_remember", f"{DATA}.0"}


async def test_a_database_answer_is_not_cached_without_refresh_or_remembering(env, browser_for):
    """Spec §11.1 step 4: with a `dont_remember` cookie, or `disableRefresh`, get-session
    answers from the database and sets no cookie at all, the cache included."""
    auth = env.make(session=CACHED)
    remembered, forgetful = browser_for(auth), browser_for(auth)
    await remembered.sign_up()
    await forgetful.sign_up(email="bob@example.com", rememberMe=False)
    for b in (remembered, forgetful):
        del b.cookies[DATA]
    r = await remembered.get("/get-session", params={"disableRefresh": "1"})
    assert r.json()["user"]["email"] == "ada@example.com" and "set-cookie" not in r.headers
    r = await forgetful.get("/get-session")
    assert r.json()["user"]["email"] == "bob@example.com" and "set-cookie" not in r.headers
    # Without either, the database's answer is cached again.
    assert DATA in set_cookies(await remembered.get("/get-session"))


async def test_the_app_check_answers_from_the_cache_on_every_database(env, browser_for):
    auth = env.make(session=CACHED)
    b = browser_for(auth)
    await b.sign_up()
    headers = {"cookie": "; ".join(f"{k}={v}" for k, v in b.cookies.items())}
    expected = await auth.api.get_session(headers)
    env.db.execute('DELETE FROM "session"')
    # No database read: PostgreSQL answers on the calling thread too.
    assert auth._native.get_session_now([("cookie", headers["cookie"])], True, False) == expected
    assert await auth.api.get_session(headers) == expected
    assert await auth.api.get_session(headers, disable_cookie_cache=True) is None

    app = FastAPI()
    cached, from_database = session_dependency(auth), session_dependency(auth, disable_cookie_cache=True)

    @app.get("/me")
    async def me(found=Depends(cached)):
        return found["user"]["email"]

    @app.get("/sensitive")
    async def sensitive(found=Depends(from_database)):
        return found["user"]["email"]

    shop = browser_for(app)
    shop.cookies = dict(b.cookies)
    assert (await shop.http.get("/me")).json() == "ada@example.com"
    assert (await shop.http.get("/sensitive")).status_code == 401


@pytest.mark.parametrize(
    ("session", "named"),
    [
        (SessionOptions(cookie_cache_enabled=True, cookie_cache_max_age=0), "session.cookie_cache_max_age"),
        (
            SessionOptions(cookie_cache_version="2"),
            "session.cookie_cache_version is set but the cookie cache is off",
        ),
    ],
)
def test_cache_options_that_cannot_take_effect_are_refused(env, session, named):
    with pytest.raises(ConfigurationError, match=named):
        env.make(session=session)
