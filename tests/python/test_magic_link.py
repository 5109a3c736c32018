"""The magic-link plugin (spec §9) and guests converting through it, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from helpers import PREFIX, Recorder, cart_table, guest, request_link, while_held

from kernia import APIError, EmailPasswordOptions, RateLimitOptions
from kernia.plugins.anonymous import anonymous
from kernia.plugins.magic_link import magic_link
from kernia.testing import advance_clock

from conftest import BASE


def location(r) -> tuple[str, dict]:
    parts = urlsplit(r.headers["location"])
    return f"{parts.scheme}://{parts.netloc}{parts.path}", parse_qs(parts.query)


# --- sending --------------------------------------------------------------------------------------


async def test_sign_in_sends_a_link_and_stores_a_single_use_token(env, browser_for, mail_outbox):
    b = browser_for(env.make(plugins=[magic_link(mail_outbox.send_magic_link)]))
    await request_link(b, "Ada@Example.com", name="Ada", metadata={"campaign": "spring"})
    sent = mail_outbox.last()
    assert sent.email == "Ada@Example.com" and sent.metadata == {"campaign": "spring"}
    assert len(sent.token) == 32 and sent.token.isalpha()
    assert sent.url == f"{PREFIX}/magic-link/verify?token={sent.token}&callbackURL=%2F"
    [(identifier, value)] = env.db.rows('SELECT "identifier", "value" FROM "verification"')
    assert identifier == sent.token
    assert json.loads(value) == {"email": "Ada@Example.com", "name": "Ada"}
    assert env.db.count("user") == 0  # nobody exists until the link is opened


async def test_the_link_carries_the_callback_urls(env, browser_for, mail_outbox):
    b = browser_for(env.make(plugins=[magic_link(mail_outbox.send_magic_link)]))
    await request_link(b, callbackURL="/dashboard", newUserCallbackURL="/welcome", errorCallbackURL="/oops")
    query = parse_qs(urlsplit(mail_outbox.last().url).query)
    assert {k: v[0] for k, v in query.items()} == {
        "token": mail_outbox.last().token,
        "callbackURL": "/dashboard",
        "newUserCallbackURL": "/welcome",
        "errorCallbackURL": "/oops",
    }


@pytest.mark.parametrize(
    ("field", "code"),
    [
        ("callbackURL", "INVALID_CALLBACK_URL"),
        ("newUserCallbackURL", "INVALID_NEW_USER_CALLBACK_URL"),
        ("errorCallbackURL", "INVALID_ERROR_CALLBACK_URL"),
    ],
)
async def test_untrusted_urls_are_refused_before_anything_is_sent(env, browser_for, field, code, mail_outbox):
    b = browser_for(env.make(plugins=[magic_link(mail_outbox.send_magic_link)]))
    r = await b.post("/sign-in/magic-link", {"email": "ada@example.com", field: "https://evil.example/x"})
    assert r.status_code == 403 and r.json()["code"] == code
    assert mail_outbox.mails == [] and env.db.count("verification") == 0


async def test_bad_bodies(env, browser_for, mail_outbox):
    b = browser_for(env.make(plugins=[magic_link(mail_outbox.send_magic_link)]))
    for body in ({"email": "not-an-email"}, {}, {"email": "a@example.com", "metadata": "x"}):
        r = await b.post("/sign-in/magic-link", body)
        assert r.status_code == 400 and r.json()["code"] == "VALIDATION_ERROR", body
    assert mail_outbox.mails == [] and env.db.count("verification") == 0


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (APIError(503, "MAIL_DOWN", "The mail service is down"), 503, "MAIL_DOWN"),
        (RuntimeError("smtp exploded"), 500, "CALLBACK_FAILED"),
    ],
)
async def test_a_failing_sender_leaves_no_usable_token(env, browser_for, error, status, code, mail_outbox):
    mail_outbox.fail = error
    b = browser_for(env.make(plugins=[magic_link(mail_outbox.send_magic_link)]))
    r = await b.post("/sign-in/magic-link", {"email": "ada@example.com"})
    assert r.status_code == status and r.json()["code"] == code
    assert env.db.count("verification") == 0
    r = await b.open(mail_outbox.last().url)
    assert location(r)[1]["error"] == ["INVALID_TOKEN"]


async def test_kernias_three_argument_sender_and_advanced_options(env, browser_for):
    sent = []

    def send(email, url, token):
        sent.append(url)

    auth = env.make(
        plugins=[magic_link()], advanced={"magic-link": {"send_magic_link": send, "expires_in": 60}}
    )
    b = browser_for(auth)
    await request_link(b)
    assert len(sent) == 1
    advance_clock(auth, 61)
    r = await b.get(sent[0].removeprefix(PREFIX))
    assert location(r)[1]["error"] == ["INVALID_TOKEN"]


# --- verifying --------------------------------------------------------------------------------------


async def test_the_mailed_link_creates_a_verified_user_and_redirects(env, browser_for, mail_outbox):
    auth = env.make(plugins=[magic_link(mail_outbox.send_magic_link)])
    await request_link(
        browser_for(auth),
        "Ada@Example.com",
        name="Ada",
        callbackURL="/dashboard",
        newUserCallbackURL="/welcome",
    )
    b = browser_for(auth)
    r = await b.open(mail_outbox.last().url)
    assert r.status_code == 302 and r.content == b""
    assert r.headers["location"] == BASE + "/welcome"  # a new user goes to newUserCallbackURL
    session = await b.session()
    user = session["user"]
    assert (user["email"], user["name"], user["emailVerified"]) == ("ada@example.com", "Ada", True)
    assert env.db.count("verification") == 0 and env.db.count("account") == 0

    # Next time the user exists: callbackURL.
    await request_link(
        browser_for(auth), "ada@example.com", callbackURL="/dashboard", newUserCallbackURL="/welcome"
    )
    r = await browser_for(auth).open(mail_outbox.last().url)
    assert r.headers["location"] == BASE + "/dashboard"
    assert env.db.count("user") == 1


async def test_verify_without_a_callback_url_answers_json(env, browser_for, mail_outbox):
    auth = env.make(plugins=[magic_link(mail_outbox.send_magic_link)])
    await request_link(browser_for(auth))
    b = browser_for(auth)
    r = await b.get("/magic-link/verify", params={"token": mail_outbox.last().token})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"token", "user", "session"}
    assert body["session"]["token"] == body["token"] and body["session"]["userId"] == body["user"]["id"]
    assert b.cookies["better-auth.session_token"].startswith(body["token"] + ".")
    assert (await b.session())["user"]["id"] == body["user"]["id"]


async def test_a_link_works_once(env, browser_for, mail_outbox):
    auth = env.make(plugins=[magic_link(mail_outbox.send_magic_link)])
    await request_link(browser_for(auth))
    assert (await browser_for(auth).open(mail_outbox.last().url)).status_code == 302
    before = env.db.snapshot()
    r = await browser_for(auth).open(mail_outbox.last().url)
    assert r.status_code == 302 and location(r) == (BASE + "/", {"error": ["INVALID_TOKEN"]})
    assert "set-cookie" not in r.headers
    assert env.db.snapshot() == before


async def test_two_clicks_at_once_sign_in_once(env, browser_for, mail_outbox):
    auth = env.make(plugins=[magic_link(mail_outbox.send_magic_link)])
    await request_link(browser_for(auth))
    results = await asyncio.gather(*(browser_for(auth).open(mail_outbox.last().url) for _ in range(4)))
    errors = [location(r)[1].get("error") for r in results]
    assert sorted(map(str, errors)) == sorted(
        map(str, [None, ["INVALID_TOKEN"], ["INVALID_TOKEN"], ["INVALID_TOKEN"]])
    )
    assert env.db.count("user") == 1 and env.db.count("session") == 1


async def test_an_expired_link_is_refused_and_removed(env, browser_for, mail_outbox):
    auth = env.make(plugins=[magic_link(mail_outbox.send_magic_link, expires_in=120)])
    await request_link(browser_for(auth), errorCallbackURL="/sign-in?from=link")
    advance_clock(auth, 121)
    r = await browser_for(auth).open(mail_outbox.last().url)
    assert r.status_code == 302
    assert r.headers["location"] == BASE + "/sign-in?from=link&error=INVALID_TOKEN"
    assert env.db.snapshot() == {"user": 0, "session": 0, "account": 0, "verification": 0}


async def test_unknown_and_missing_tokens(env, browser_for, mail_outbox):
    b = browser_for(env.make(plugins=[magic_link(mail_outbox.send_magic_link)]))
    r = await b.get("/magic-link/verify", params={"token": "nope", "callbackURL": "/x"})
    assert r.status_code == 302 and r.headers["location"] == BASE + "/x?error=INVALID_TOKEN"
    r = await b.get("/magic-link/verify")
    assert r.status_code == 400 and r.json()["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("field", ["callbackURL", "newUserCallbackURL", "errorCallbackURL"])
async def test_verify_checks_its_urls(env, browser_for, field, mail_outbox):
    auth = env.make(plugins=[magic_link(mail_outbox.send_magic_link)])
    await request_link(browser_for(auth))
    b = browser_for(auth)
    for bad in ("https://evil.example/", "//evil.example", "/%2F%2Fevil.example"):
        r = await b.get("/magic-link/verify", params={"token": mail_outbox.last().token, field: bad})
        assert r.status_code == 403 and r.json()["code"] == "INVALID_CALLBACK_URL", bad
    assert env.db.count("session") == 0 and env.db.count("verification") == 1


async def test_sign_up_can_be_disabled(env, browser_for, mail_outbox):
    auth = env.make(plugins=[magic_link(mail_outbox.send_magic_link, disable_sign_up=True)])
    await request_link(browser_for(auth), "new@example.com")
    r = await browser_for(auth).open(mail_outbox.last().url)
    assert location(r)[1]["error"] == ["new_user_signup_disabled"]
    assert env.db.count("user") == 0 and env.db.count("verification") == 0
    await browser_for(auth).sign_up()
    await request_link(browser_for(auth), "ada@example.com")
    b = browser_for(auth)
    assert "error" not in location(await b.open(mail_outbox.last().url))[1]
    assert (await b.session())["user"]["email"] == "ada@example.com"


async def test_a_link_revokes_access_set_up_before_the_email_was_proven(env, browser_for, mail_outbox):
    auth = env.make(plugins=[magic_link(mail_outbox.send_magic_link)])
    squatter = browser_for(auth)
    user_id = (await squatter.sign_up()).json()["user"]["id"]  # unverified, with a password
    await request_link(browser_for(auth))
    owner = browser_for(auth)
    await owner.open(mail_outbox.last().url)
    assert (await owner.session())["user"]["id"] == user_id
    assert (await owner.session())["user"]["emailVerified"] is True
    assert await squatter.session() is None  # the earlier session is gone
    assert (await browser_for(auth).sign_in()).status_code == 401  # and so is the password
    assert env.db.count("account") == 0


async def test_a_verified_users_other_sessions_are_kept(env, browser_for, mail_outbox):
    auth = env.make(plugins=[magic_link(mail_outbox.send_magic_link)])
    first = browser_for(auth)
    await request_link(first)
    await first.open(mail_outbox.last().url)
    await request_link(browser_for(auth))
    await browser_for(auth).open(mail_outbox.last().url)
    assert (await first.session())["user"]["email"] == "ada@example.com"
    assert env.db.count("session") == 2


async def test_hashed_tokens(env, browser_for, mail_outbox):
    auth = env.make(plugins=[magic_link(mail_outbox.send_magic_link, store_token="hashed")])
    await request_link(browser_for(auth))
    [(identifier,)] = env.db.rows('SELECT "identifier" FROM "verification"')
    assert identifier != mail_outbox.last().token and len(identifier) == 43
    b = browser_for(auth)
    assert "error" not in location(await b.open(mail_outbox.last().url))[1]
    assert (await b.session())["user"]["email"] == "ada@example.com"


async def test_the_plugins_rate_limit(env, browser_for, mail_outbox):
    auth = env.make(
        plugins=[magic_link(mail_outbox.send_magic_link)], rate_limit=RateLimitOptions(enabled=True)
    )
    b = browser_for(auth)
    codes = [(await b.post("/sign-in/magic-link", {"email": "a@example.com"})).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]


async def test_verify_has_the_same_rate_limit(env, browser_for, mail_outbox):
    auth = env.make(
        plugins=[magic_link(mail_outbox.send_magic_link)], rate_limit=RateLimitOptions(enabled=True)
    )
    b = browser_for(auth)
    codes = [(await b.get("/magic-link/verify", params={"token": "x"})).status_code for _ in range(6)]
    assert codes == [302] * 5 + [429]


async def test_sign_in_is_protected_against_login_csrf(env, browser_for, mail_outbox):
    # Spec §13.3: the form-CSRF check applies without cookies too.
    auth = env.make(plugins=[magic_link(mail_outbox.send_magic_link)])
    body = {"email": "ada@example.com"}
    r = await browser_for(auth, origin="https://evil.example").post("/sign-in/magic-link", body)
    assert r.status_code == 403 and r.json()["code"] == "INVALID_ORIGIN"
    navigation = {"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"}
    r = await browser_for(auth, origin=None).post("/sign-in/magic-link", body, headers=navigation)
    assert r.status_code == 403 and r.json()["code"] == "CROSS_SITE_NAVIGATION_LOGIN_BLOCKED"
    assert mail_outbox.mails == [] and env.db.count("verification") == 0
    # A server-side caller without Origin or Fetch-Metadata headers is let through.
    await request_link(browser_for(auth, origin=None))
    assert len(mail_outbox.mails) == 1


async def test_routes_exist_only_with_the_plugin(env, browser_for):
    b = browser_for(env.make())
    assert (await b.post("/sign-in/magic-link", {"email": "a@example.com"})).status_code == 404
    assert (await b.get("/magic-link/verify", params={"token": "x"})).status_code == 404


def test_the_plugin_checks_its_arguments_when_built(tmp_path, mail_outbox):
    from kernia import ConfigurationError, KerniaOptions
    from kernia.auth import init
    from kernia.plugins import magic_link as reexported

    assert reexported is magic_link
    with pytest.raises(TypeError, match="send_magic_link"):
        magic_link("smtp://localhost")
    with pytest.raises(ValueError, match="expires_in"):
        magic_link(mail_outbox.send_magic_link, expires_in=0)
    with pytest.raises(ValueError, match="store_token"):
        magic_link(mail_outbox.send_magic_link, store_token="encrypted")
    with pytest.raises(ConfigurationError, match="send_magic_link"):
        init(
            KerniaOptions(database=f"sqlite:///{tmp_path / 'a.db'}", secret="s" * 32, plugins=[magic_link()])
        )


# --- guests converting through magic links ----------------------------------------------------------


async def test_a_guest_converts_by_opening_a_link_for_a_new_email(env, browser_for, mail_outbox):
    cart_table(env)
    on_link = Recorder()
    b = browser_for(env.make(plugins=[anonymous(on_link=on_link), magic_link(mail_outbox.send_magic_link)]))
    guest_id = (await guest(b))["user"]["id"]
    env.db.execute('INSERT INTO "cart" VALUES (?, ?, ?)', "c1", guest_id, "book")
    await request_link(b, "fresh@example.com", callbackURL="/cart")
    r = await b.open(mail_outbox.last().url)
    assert r.status_code == 302 and r.headers["location"] == BASE + "/cart"
    session = await b.session()
    new_id = session["user"]["id"]
    assert session["user"]["isAnonymous"] is False and session["user"]["emailVerified"] is True
    assert on_link.calls == [(guest_id, new_id)]
    assert env.db.rows('SELECT "id" FROM "user"') == [(new_id,)]
    assert env.db.rows('SELECT "user_id" FROM "cart"') == [(new_id,)]


async def test_a_guest_converts_by_opening_a_link_for_an_existing_user(env, browser_for, mail_outbox):
    cart_table(env)
    on_link = Recorder()
    auth = env.make(plugins=[anonymous(on_link=on_link), magic_link(mail_outbox.send_magic_link)])
    owner = browser_for(auth)
    await request_link(owner, "owner@example.com")
    await owner.open(mail_outbox.last().url)
    existing = (await owner.session())["user"]["id"]
    b = browser_for(auth)
    guest_id = (await guest(b))["user"]["id"]
    await request_link(b, "owner@example.com")
    r = await b.get("/magic-link/verify", params={"token": mail_outbox.last().token})
    assert r.status_code == 200 and r.json()["user"]["id"] == existing
    assert on_link.calls == [(guest_id, existing)]
    env.db.assert_gone(guest_id)
    assert (await owner.session())["user"]["id"] == existing


async def test_a_link_opened_in_another_browser_leaves_the_guest_alone(env, browser_for, mail_outbox):
    on_link = Recorder()
    cart_table(env)
    auth = env.make(plugins=[anonymous(on_link=on_link), magic_link(mail_outbox.send_magic_link)])
    b = browser_for(auth)
    guest_id = (await guest(b))["user"]["id"]
    await request_link(b, "phone@example.com")
    phone = browser_for(auth)  # the email was opened on another device
    await phone.open(mail_outbox.last().url)
    assert (await phone.session())["user"]["email"] == "phone@example.com"
    assert on_link.calls == []
    assert (await b.session())["user"]["id"] == guest_id  # still the guest here


async def test_a_failing_on_link_redirects_with_the_error_and_keeps_the_link_usable(
    env, browser_for, mail_outbox
):
    cart_table(env)
    on_link = Recorder(fail=APIError(409, "CART_CONFLICT", "The cart could not be moved"))
    auth = env.make(plugins=[anonymous(on_link=on_link), magic_link(mail_outbox.send_magic_link)])
    b = browser_for(auth)
    guest_id = (await guest(b))["user"]["id"]
    env.db.execute('INSERT INTO "cart" VALUES (?, ?, ?)', "c1", guest_id, "book")
    await request_link(b, "fresh@example.com", callbackURL="/cart", errorCallbackURL="/oops")
    before = env.db.snapshot()
    r = await b.open(mail_outbox.last().url)
    assert r.status_code == 302 and r.headers["location"] == BASE + "/oops?error=CART_CONFLICT"
    assert "set-cookie" not in r.headers
    assert env.db.snapshot() == before
    assert env.db.rows('SELECT "user_id" FROM "cart"') == [(guest_id,)]
    assert (await b.session())["user"]["id"] == guest_id

    on_link.fail = None  # the same link converts once the cause is fixed
    r = await b.open(mail_outbox.last().url)
    assert r.headers["location"] == BASE + "/cart"
    new_id = (await b.session())["user"]["id"]
    assert env.db.rows('SELECT "user_id" FROM "cart"') == [(new_id,)]
    env.db.assert_gone(guest_id)


async def test_a_crashing_on_link_redirects_with_on_link_failed(env, browser_for, mail_outbox):
    auth = env.make(
        plugins=[
            anonymous(on_link=Recorder(fail=RuntimeError("bug"))),
            magic_link(mail_outbox.send_magic_link),
        ]
    )
    cart_table(env)
    b = browser_for(auth)
    await guest(b)
    await request_link(b, "fresh@example.com")
    r = await b.open(mail_outbox.last().url)
    assert location(r) == (BASE + "/", {"error": ["ON_LINK_FAILED"]})
    assert env.db.count("verification") == 1


async def test_two_tabs_opening_the_link_convert_the_guest_once(env, browser_for, mail_outbox):
    cart_table(env)
    on_link = Recorder()
    auth = env.make(plugins=[anonymous(on_link=on_link), magic_link(mail_outbox.send_magic_link)])
    b = browser_for(auth)
    guest_id = (await guest(b))["user"]["id"]
    env.db.execute('INSERT INTO "cart" VALUES (?, ?, ?)', "c1", guest_id, "book")
    await request_link(b, "fresh@example.com")
    tab2 = browser_for(auth)
    tab2.cookies = dict(b.cookies)
    r1, r2 = await while_held(on_link, b.open(mail_outbox.last().url), tab2.open(mail_outbox.last().url))
    errors = [str(location(r)[1].get("error")) for r in (r1, r2)]
    assert errors == ["None", "['INVALID_TOKEN']"]
    assert len(on_link.calls) == 1
    new_id = on_link.calls[0][1]
    assert env.db.rows('SELECT "id" FROM "user"') == [(new_id,)]
    assert env.db.rows('SELECT "user_id" FROM "cart"') == [(new_id,)]


async def test_a_guest_with_a_password_account_in_the_same_app(env, browser_for, mail_outbox):
    # Both plugins beside email and password: the guest converts once, by whichever path ends first.
    on_link = Recorder()
    cart_table(env)
    auth = env.make(
        plugins=[anonymous(on_link=on_link), magic_link(mail_outbox.send_magic_link)],
        email_and_password=EmailPasswordOptions(enabled=True),
    )
    b = browser_for(auth)
    guest_id = (await guest(b))["user"]["id"]
    await request_link(b, "ada@example.com")
    new_id = (await b.sign_up()).json()["user"]["id"]
    assert on_link.calls == [(guest_id, new_id)]
    await b.open(mail_outbox.last().url)  # the link now signs in the same (unverified) account
    assert on_link.calls == [(guest_id, new_id)]
    assert (await b.session())["user"]["id"] == new_id


async def test_the_guest_is_kept_when_deletion_is_disabled(env, browser_for, mail_outbox):
    on_link = Recorder()
    cart_table(env)
    auth = env.make(
        plugins=[
            anonymous(on_link=on_link, disable_delete_anonymous_user=True),
            magic_link(mail_outbox.send_magic_link),
        ]
    )
    b = browser_for(auth)
    guest_id = (await guest(b))["user"]["id"]
    await request_link(b, "kept@example.com")
    await b.open(mail_outbox.last().url)
    new_id = (await b.session())["user"]["id"]
    assert on_link.calls == [(guest_id, new_id)]
    assert {r[0] for r in env.db.rows('SELECT "id" FROM "user"')} == {guest_id, new_id}
    assert env.db.rows('SELECT COUNT(*) FROM "session" WHERE "userId" = ?', guest_id) == [(0,)]
