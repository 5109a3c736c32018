"""Guest sessions (spec §7) and the conversion guarantees, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextvars
import re
import threading

import pytest
from helpers import Recorder, cart_table, eventually, guest, while_held

from kernia import APIError
from kernia.plugins.anonymous import anonymous

from conftest import set_cookies

GUEST_EMAIL = re.compile(r"^[a-z0-9]{32}@anonymous\.placeholder\.invalid$")


async def test_guest_sign_in(env, browser_for):
    b = browser_for(env.make(plugins=[anonymous()]))
    body = await guest(b)
    assert set(body) == {"token", "user"}
    user = body["user"]
    assert user["isAnonymous"] is True and user["name"] == "Anonymous" and user["emailVerified"] is False
    assert GUEST_EMAIL.match(user["email"]), user["email"]
    assert b.cookies["better-auth.session_token"].startswith(body["token"] + ".")
    [(is_anon,)] = env.db.rows('SELECT "isAnonymous" FROM "user"')
    assert is_anon


async def test_guest_session_shows_is_anonymous(env, browser_for):
    b = browser_for(env.make(plugins=[anonymous()]))
    r = await b.post("/sign-in/anonymous", {})
    assert "Max-Age=604800" in set_cookies(r)["better-auth.session_token"]
    s = await b.session()
    assert s["user"]["isAnonymous"] is True
    assert s["user"]["id"] == r.json()["user"]["id"]


async def test_a_guest_sign_in_keeps_a_browser_that_asked_not_to_be_remembered(env, browser_for):
    # Spec §2.4: routes without rememberMe inherit the dont_remember cookie.
    auth = env.make(plugins=[anonymous()])
    b = browser_for(auth)
    await b.sign_up()
    b.cookies.clear()
    await b.sign_in(rememberMe=False)
    r = await b.post("/sign-in/anonymous", {})
    cookies = set_cookies(r)
    assert "Max-Age" not in cookies["better-auth.session_token"]
    assert cookies["better-auth.dont_remember"].startswith("better-auth.dont_remember=true.")
    # A browser without the flag gets a remembered guest session.
    fresh = await browser_for(auth).post("/sign-in/anonymous", {})
    assert "Max-Age=604800" in set_cookies(fresh)["better-auth.session_token"]
    assert "better-auth.dont_remember" not in set_cookies(fresh)


async def test_a_guest_cannot_sign_in_anonymously_again(env, browser_for):
    b = browser_for(env.make(plugins=[anonymous()]))
    await guest(b)
    before = env.db.snapshot()
    r = await b.post("/sign-in/anonymous", {})
    assert r.status_code == 400
    assert r.json() == {
        "code": "ANONYMOUS_USERS_CANNOT_SIGN_IN_AGAIN_ANONYMOUSLY",
        "message": "Anonymous users cannot sign in again anonymously",
    }
    assert env.db.snapshot() == before


async def test_a_signed_in_user_signing_in_anonymously_gets_a_new_guest(env, browser_for):
    auth = env.make(plugins=[anonymous()])
    b = browser_for(auth)
    await b.sign_up()
    old = dict(b.cookies)
    body = await guest(b)
    assert body["user"]["isAnonymous"] is True
    other = browser_for(auth)
    other.cookies = old
    assert (await other.session())["user"]["email"] == "ada@example.com"  # the old session still works


async def test_custom_email_domain(env, browser_for):
    b = browser_for(env.make(plugins=[anonymous(email_domain_name="guests.example.com")]))
    email = (await guest(b))["user"]["email"]
    assert re.fullmatch(r"temp-[a-z0-9]{32}@guests\.example\.com", email), email


@pytest.mark.parametrize("is_async", [False, True])
async def test_generate_name_gets_the_request(env, browser_for, is_async):
    seen = []

    def sync_name(ctx):
        seen.append(ctx.request["path"])
        return "Guest-" + ctx.request["headers"]["x-visitor"]

    async def async_name(ctx):
        return sync_name(ctx)

    b = browser_for(env.make(plugins=[anonymous(generate_name=async_name if is_async else sync_name)]))
    r = await b.post("/sign-in/anonymous", {}, headers={"x-visitor": "42"})
    assert r.json()["user"]["name"] == "Guest-42"
    assert seen == ["/sign-in/anonymous"]


@pytest.mark.parametrize("is_async", [False, True])
async def test_generate_random_email(env, browser_for, is_async):
    counter = iter(range(100))

    def sync_email():
        return f"Visitor-{next(counter)}@Guests.Example.com"

    async def async_email():
        return sync_email()

    b = browser_for(
        env.make(plugins=[anonymous(generate_random_email=async_email if is_async else sync_email)])
    )
    assert (await guest(b))["user"]["email"] == "visitor-0@guests.example.com"  # lower-cased


async def test_a_generated_email_that_is_not_an_email_is_400(env, browser_for):
    b = browser_for(env.make(plugins=[anonymous(generate_random_email=lambda: "not an email")]))
    r = await b.post("/sign-in/anonymous", {})
    assert r.status_code == 400
    assert r.json() == {
        "code": "INVALID_EMAIL_FORMAT",
        "message": "Email was not generated in a valid format",
    }
    assert env.db.count("user") == 0


async def test_generators_that_return_nothing_fall_back_to_defaults(env, browser_for):
    b = browser_for(
        env.make(plugins=[anonymous(generate_name=lambda ctx: "", generate_random_email=lambda: None)])
    )
    user = (await guest(b))["user"]
    assert user["name"] == "Anonymous" and GUEST_EMAIL.match(user["email"])


async def test_a_generator_that_raises_is_a_clear_500(env, browser_for):
    def broken(ctx):
        raise RuntimeError("boom")

    b = browser_for(env.make(plugins=[anonymous(generate_name=broken)]))
    r = await b.post("/sign-in/anonymous", {})
    assert r.status_code == 500 and r.json()["code"] == "CALLBACK_FAILED"
    assert env.db.count("user") == 0


async def test_a_duplicate_generated_email_is_failed_to_create_user(env, browser_for):
    auth = env.make(plugins=[anonymous(generate_random_email=lambda: "same@guests.example.com")])
    await guest(browser_for(auth))
    r = await browser_for(auth).post("/sign-in/anonymous", {})
    assert r.status_code == 500 and r.json()["code"] == "FAILED_TO_CREATE_USER"


async def test_is_anonymous_cannot_be_set_by_clients(env, browser_for):
    b = browser_for(env.make(plugins=[anonymous()]))
    r = await b.sign_up(isAnonymous=True)
    assert r.json()["user"]["isAnonymous"] is False
    [(is_anon,)] = env.db.rows('SELECT "isAnonymous" FROM "user"')
    assert not is_anon


async def test_routes_exist_only_with_the_plugin(env, browser_for):
    b = browser_for(env.make())
    assert (await b.post("/sign-in/anonymous", {})).status_code == 404
    assert (await b.post("/delete-anonymous-user", {})).status_code == 404
    assert "isAnonymous" not in (await b.sign_up()).json()["user"]


# --- delete-anonymous-user --------------------------------------------------------------------


async def test_delete_anonymous_user(env, browser_for):
    b = browser_for(env.make(plugins=[anonymous()]))
    await guest(b)
    old = dict(b.cookies)
    r = await b.post("/delete-anonymous-user", {})
    assert r.status_code == 200 and r.json() == {"success": True}
    assert "Max-Age=0" in set_cookies(r)["better-auth.session_token"]
    assert env.db.snapshot() == {"user": 0, "session": 0, "account": 0, "verification": 0}
    b.cookies = old
    assert await b.session() is None


async def test_delete_anonymous_user_errors(env, browser_for):
    auth = env.make(plugins=[anonymous()])
    b = browser_for(auth)
    r = await b.post("/delete-anonymous-user", {})
    assert r.status_code == 401 and r.json() == {"code": "UNAUTHORIZED", "message": "Unauthorized"}
    await b.sign_up()
    r = await b.post("/delete-anonymous-user", {})
    assert r.status_code == 403 and r.json() == {
        "code": "USER_IS_NOT_ANONYMOUS",
        "message": "User is not anonymous",
    }
    kept = browser_for(env.make(plugins=[anonymous(disable_delete_anonymous_user=True)]))
    await guest(kept)
    r = await kept.post("/delete-anonymous-user", {})
    assert r.status_code == 400 and r.json()["code"] == "DELETE_ANONYMOUS_USER_DISABLED"
    assert env.db.rows('SELECT COUNT(*) FROM "user" WHERE "isAnonymous" = ?', True)[0][0] == 1


# --- conversion ---------------------------------------------------------------------------------


async def test_conversion_on_sign_up(env, browser_for):
    cart_table(env)
    on_link = Recorder()
    b = browser_for(env.make(plugins=[anonymous(on_link=on_link)]))
    guest_id = (await guest(b))["user"]["id"]
    guest_cookies = dict(b.cookies)
    env.db.execute('INSERT INTO "cart" VALUES (?, ?, ?)', "c1", guest_id, "book")
    r = await b.sign_up(email="convert@example.com")
    assert r.status_code == 200
    new_id = r.json()["user"]["id"]
    assert r.json()["user"]["isAnonymous"] is False
    assert on_link.calls == [(guest_id, new_id)]
    assert env.db.rows('SELECT "id" FROM "user"') == [(new_id,)]
    assert env.db.rows('SELECT "userId" FROM "session"') == [(new_id,)]
    assert env.db.rows('SELECT "user_id" FROM "cart"') == [(new_id,)]
    assert (await b.session())["user"]["id"] == new_id
    b.cookies = guest_cookies
    assert await b.session() is None  # the guest's cookie no longer works


async def test_conversion_on_sign_in_to_an_existing_account(env, browser_for):
    on_link = Recorder()
    auth = env.make(plugins=[anonymous(on_link=on_link)])
    owner = browser_for(auth)
    existing = (await owner.sign_up(email="owner@example.com")).json()["user"]["id"]
    cart_table(env)
    b = browser_for(auth)
    guest_id = (await guest(b))["user"]["id"]
    r = await b.sign_in(email="owner@example.com")
    assert r.status_code == 200 and r.json()["user"]["id"] == existing
    assert on_link.calls == [(guest_id, existing)]
    env.db.assert_gone(guest_id)
    assert (await owner.session())["user"]["id"] == existing  # other sessions untouched


async def test_conversion_without_on_link_deletes_the_guest(env, browser_for):
    b = browser_for(env.make(plugins=[anonymous()]))
    await guest(b)
    await b.sign_up()
    assert env.db.rows('SELECT "email" FROM "user"') == [("ada@example.com",)]


async def test_a_sync_on_link_is_accepted(env, browser_for):
    calls = []
    b = browser_for(env.make(plugins=[anonymous(on_link=lambda a, n, ctx: calls.append((a["id"], n["id"])))]))
    guest_id = (await guest(b))["user"]["id"]
    new_id = (await b.sign_up()).json()["user"]["id"]
    assert calls == [(guest_id, new_id)]


async def test_on_link_gets_user_dicts_request_and_auth(env, browser_for):
    seen = {}

    async def on_link(anonymous_user, new_user, ctx):
        seen.update(anon=anonymous_user, new=new_user, path=ctx.request["path"], method=ctx.request["method"])
        seen["ip"] = ctx.request["client_ip"]
        seen["auth"] = ctx.auth

    auth = env.make(plugins=[anonymous(on_link=on_link)])
    b = browser_for(auth)
    g = (await guest(b))["user"]
    new = (await b.sign_up()).json()["user"]
    assert seen["anon"] == g and seen["new"] == new
    assert (seen["path"], seen["method"], seen["ip"]) == ("/sign-up/email", "POST", "127.0.0.1")
    assert seen["auth"] is auth


request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


# Only through the ASGI app: context variables come from the ASGI app's caller.
@pytest.mark.parametrize("transport", ["asgi"])
async def test_async_callbacks_run_in_the_requests_context(env, transport, browser_for):
    # A middleware's context variables (a request id, a database session) reach on_link.
    seen = []

    async def on_link(anonymous_user, new_user, ctx):
        await asyncio.sleep(0)
        seen.append(request_id.get())

    inner = env.make(plugins=[anonymous(on_link=on_link)]).router.mount()

    async def app(scope, receive, send):
        request_id.set(f"req-{scope['path']}")
        await inner(scope, receive, send)

    b = browser_for(app)
    await guest(b)
    assert (await b.sign_up()).status_code == 200
    assert seen == ["req-/api/auth/sign-up/email"]


async def test_disable_delete_keeps_the_guest(env, browser_for):
    on_link = Recorder()
    cart_table(env)
    b = browser_for(env.make(plugins=[anonymous(on_link=on_link, disable_delete_anonymous_user=True)]))
    guest_id = (await guest(b))["user"]["id"]
    new_id = (await b.sign_up()).json()["user"]["id"]
    assert on_link.calls == [(guest_id, new_id)]
    assert {r[0] for r in env.db.rows('SELECT "id" FROM "user"')} == {guest_id, new_id}
    # The converted guest session is used up, so it cannot convert again.
    assert env.db.rows('SELECT COUNT(*) FROM "session" WHERE "userId" = ?', guest_id) == [(0,)]


# --- guarantee 1: a failing on_link undoes the conversion --------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "body"),
    [
        (
            APIError(409, "CART_CONFLICT", "The cart could not be moved"),
            409,
            {"code": "CART_CONFLICT", "message": "The cart could not be moved"},
        ),
        (
            RuntimeError("bug in the app"),
            500,
            {
                "code": "ON_LINK_FAILED",
                "message": "The app's on_link callback failed; the guest was not converted",
            },
        ),
    ],
)
@pytest.mark.parametrize("path", ["sign-up", "sign-in"])
async def test_a_failing_on_link_undoes_everything(env, browser_for, error, status, body, path, caplog):
    on_link = Recorder(fail=error)
    auth = env.make(plugins=[anonymous(on_link=on_link)])
    if path == "sign-in":
        await browser_for(auth).sign_up(email="owner@example.com")
    cart_table(env)
    b = browser_for(auth)
    guest_id = (await guest(b))["user"]["id"]
    env.db.execute('INSERT INTO "cart" VALUES (?, ?, ?)', "c1", guest_id, "book")
    before = env.db.snapshot()

    r = await (
        b.sign_up(email="new@example.com") if path == "sign-up" else b.sign_in(email="owner@example.com")
    )
    assert r.status_code == status and r.json() == body
    assert "set-cookie" not in r.headers
    assert env.db.snapshot() == before
    # An unexpected exception is logged on the kernia logger with its traceback; an
    # APIError is the app's answer, not a failure, and is not logged.
    logged = [r for r in caplog.records if r.name == "kernia"]
    if status == 500:
        [record] = logged
        assert (record.levelname, record.getMessage()) == ("ERROR", "on_link raised; the request failed")
        assert record.exc_info[1] is error
    else:
        assert logged == []
    assert env.db.rows('SELECT "user_id" FROM "cart"') == [(guest_id,)]  # the move through ctx.db was undone
    assert env.db.rows('SELECT COUNT(*) FROM "user" WHERE "email" = ?', "new@example.com") == [(0,)]
    assert (await b.session())["user"]["id"] == guest_id  # the guest still works

    on_link.fail = None  # the cause is fixed: a retry converts
    r = await (
        b.sign_up(email="new@example.com") if path == "sign-up" else b.sign_in(email="owner@example.com")
    )
    assert r.status_code == 200
    assert env.db.rows('SELECT "user_id" FROM "cart"') == [(r.json()["user"]["id"],)]
    env.db.assert_gone(guest_id)


# --- guarantee 2: exactly once --------------------------------------------------------------------


async def test_two_concurrent_sign_ups_convert_the_guest_once(env, browser_for):
    on_link = Recorder()
    cart_table(env)
    auth = env.make(plugins=[anonymous(on_link=on_link)])
    b = browser_for(auth)
    guest_id = (await guest(b))["user"]["id"]
    env.db.execute('INSERT INTO "cart" VALUES (?, ?, ?)', "c1", guest_id, "book")
    tab2 = browser_for(auth)
    tab2.cookies = dict(b.cookies)
    r1, r2 = await while_held(
        on_link, b.sign_up(email="one@example.com"), tab2.sign_up(email="two@example.com")
    )
    assert (r1.status_code, r2.status_code) == (200, 200)
    assert len(on_link.calls) == 1
    winner = on_link.calls[0][1]
    assert winner == r1.json()["user"]["id"]
    assert env.db.rows('SELECT "user_id" FROM "cart"') == [(winner,)]
    env.db.assert_gone(guest_id)
    assert env.db.count("user") == 2  # both accounts exist; only one got the guest's data


async def test_a_double_submit_converts_once_and_the_second_is_a_clear_error(env, browser_for):
    cart_table(env)
    on_link = Recorder()
    auth = env.make(plugins=[anonymous(on_link=on_link)])
    b = browser_for(auth)
    await guest(b)
    tab2 = browser_for(auth)
    tab2.cookies = dict(b.cookies)
    r1, r2 = await while_held(
        on_link, b.sign_up(email="same@example.com"), tab2.sign_up(email="same@example.com")
    )
    assert (r1.status_code, r2.status_code) == (200, 422)
    assert r2.json()["code"] == "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL"
    assert len(on_link.calls) == 1
    assert env.db.count("user") == 1


async def test_sign_up_and_sign_in_racing_convert_once(env, browser_for):
    cart_table(env)
    on_link = Recorder()
    auth = env.make(plugins=[anonymous(on_link=on_link)])
    await browser_for(auth).sign_up(email="owner@example.com")
    b = browser_for(auth)
    guest_id = (await guest(b))["user"]["id"]
    tab2 = browser_for(auth)
    tab2.cookies = dict(b.cookies)
    r1, r2 = await while_held(
        on_link, b.sign_up(email="fresh@example.com"), tab2.sign_in(email="owner@example.com")
    )
    assert (r1.status_code, r2.status_code) == (200, 200)
    assert len(on_link.calls) == 1 and on_link.calls[0][0] == guest_id
    env.db.assert_gone(guest_id)


# --- guarantee 3: no leaks between requests ------------------------------------------------------


async def test_a_failed_conversion_leaves_nothing_behind_for_the_next(env, browser_for):
    cart_table(env)
    on_link = Recorder(fail=RuntimeError("first one breaks"))
    auth = env.make(plugins=[anonymous(on_link=on_link)])
    first = browser_for(auth)
    await guest(first)
    assert (await first.sign_up(email="first@example.com")).status_code == 500
    on_link.fail = None
    second = browser_for(auth)
    second_id = (await guest(second))["user"]["id"]
    r = await second.sign_up(email="second@example.com")
    assert r.status_code == 200
    assert on_link.calls[-1] == (second_id, r.json()["user"]["id"])


async def test_a_client_that_disconnects_mid_conversion(env, browser_for):
    cart_table(env)
    on_link = Recorder()
    on_link.release = threading.Event()
    auth = env.make(plugins=[anonymous(on_link=on_link)])
    b = browser_for(auth)
    guest_id = (await guest(b))["user"]["id"]
    request = asyncio.create_task(b.sign_up(email="gone@example.com"))
    assert await asyncio.to_thread(on_link.started.wait, 5)
    request.cancel()  # the client goes away while on_link runs
    with pytest.raises(asyncio.CancelledError):
        await request
    on_link.release.set()
    # The conversion runs to its end on its own: converted, not half-done.
    await eventually(
        lambda: env.db.rows('SELECT COUNT(*) FROM "user" WHERE "id" = ?', guest_id) == [(0,)],
        "the abandoned conversion to finish",
    )
    env.db.assert_gone(guest_id)
    assert env.db.rows('SELECT "email" FROM "user"') == [("gone@example.com",)]
    assert env.db.count("session") == 1
    # Later requests are unaffected.
    other = browser_for(auth)
    await guest(other)
    assert (await other.sign_up(email="next@example.com")).status_code == 200


# --- guarantee 4: a slow on_link blocks nobody else ----------------------------------------------


async def test_a_slow_on_link_blocks_nobody(env, browser_for):
    # on_link waits (as on the app's own database or an HTTP call) until the test lets it go,
    # which it does only after ten other visitors were served.
    started, release = threading.Event(), threading.Event()

    async def slow(anonymous_user, new_user, ctx):
        started.set()
        await asyncio.to_thread(release.wait, 10)

    auth = env.make(plugins=[anonymous(on_link=slow)])
    b = browser_for(auth)
    await guest(b)
    others = [browser_for(auth) for _ in range(10)]
    conversion = asyncio.create_task(b.sign_up(email="slow@example.com"))
    assert await asyncio.to_thread(started.wait, 5)

    await asyncio.gather(*(guest(o) for o in others))
    sessions = await asyncio.gather(*(o.session() for o in others))
    assert all(s["user"]["isAnonymous"] for s in sessions)
    assert not conversion.done(), "the others should be served while on_link still waits"
    release.set()
    assert (await conversion).status_code == 200


# --- the plugin object ---------------------------------------------------------------------------


def test_the_plugin_checks_its_arguments_when_built():
    from kernia.plugins import anonymous as reexported

    assert reexported is anonymous
    with pytest.raises(TypeError, match="on_link"):
        anonymous(on_link=5)
    with pytest.raises(TypeError, match="generate_name"):
        anonymous(generate_name="Guest")
    with pytest.raises(TypeError, match="email_domain_name"):
        anonymous(email_domain_name=5)
    with pytest.raises(ValueError, match="not a domain"):
        anonymous(email_domain_name="not a domain")
    with pytest.raises(TypeError, match="disable_delete_anonymous_user"):
        anonymous(disable_delete_anonymous_user="yes")
    with pytest.raises(TypeError):
        anonymous(lambda *a: None, "positional-domain")
    plugin = anonymous(email_domain_name="guests.example.com", disable_delete_anonymous_user=True)
    assert plugin.id == "anonymous" and plugin.email_domain_name == "guests.example.com"
    assert plugin.disable_delete_anonymous_user is True
