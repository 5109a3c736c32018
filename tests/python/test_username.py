"""The username plugin (spec §8) and guests converting through it, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from helpers import Recorder, cart_table, guest, while_held

from kernia import APIError, RateLimitOptions
from kernia.plugins.anonymous import anonymous
from kernia.plugins.username import username


async def sign_up(b, name="Ada_L", email="ada@example.com", password="correct-horse", **extra):
    return await b.post(
        "/sign-up/email",
        {"name": "Ada", "email": email, "password": password, "username": name, **extra},
    )


async def sign_in(b, name="Ada_L", password="correct-horse", **extra):
    return await b.post("/sign-in/username", {"username": name, "password": password, **extra})


# --- sign-up ---------------------------------------------------------------------------------------


async def test_sign_up_stores_the_normalized_username_and_the_display_form(env, browser_for):
    b = browser_for(env.make(plugins=[username()]))
    r = await sign_up(b, "Ada_Lovelace.1815")
    assert r.status_code == 200, r.text
    user = r.json()["user"]
    assert (user["username"], user["displayUsername"]) == ("ada_lovelace.1815", "Ada_Lovelace.1815")
    assert env.db.rows('SELECT "username", "displayUsername" FROM "user"') == [
        ("ada_lovelace.1815", "Ada_Lovelace.1815")
    ]
    assert (await b.session())["user"]["username"] == "ada_lovelace.1815"


async def test_a_display_username_alone_becomes_the_username(env, browser_for):
    b = browser_for(env.make(plugins=[username()]))
    r = await b.sign_up(displayUsername="Grace.H")
    assert (r.json()["user"]["username"], r.json()["user"]["displayUsername"]) == ("grace.h", "Grace.H")
    # One that would not pass as a username is kept only as the display name.
    r = await browser_for(env.make(plugins=[username()])).sign_up(
        email="x@example.com", displayUsername="Grace H!"
    )
    assert (r.json()["user"]["username"], r.json()["user"]["displayUsername"]) == (None, "Grace H!")


async def test_sign_up_without_a_username_still_works(env, browser_for):
    r = await browser_for(env.make(plugins=[username()])).sign_up()
    assert r.status_code == 200
    assert (r.json()["user"]["username"], r.json()["user"]["displayUsername"]) == (None, None)


@pytest.mark.parametrize(
    ("name", "code", "message"),
    [
        ("ab", "USERNAME_TOO_SHORT", "Username is too short"),
        ("a" * 31, "USERNAME_TOO_LONG", "Username is too long"),
        ("ada lovelace", "INVALID_USERNAME", "Username is invalid"),
        ("ada-l", "INVALID_USERNAME", "Username is invalid"),
    ],
)
async def test_sign_up_username_errors_are_400(env, browser_for, name, code, message):
    b = browser_for(env.make(plugins=[username()]))
    r = await sign_up(b, name)
    assert r.status_code == 400 and r.json() == {"code": code, "message": message}
    assert env.db.snapshot() == {"user": 0, "session": 0, "account": 0, "verification": 0}


async def test_a_taken_username_is_400_whatever_its_case(env, browser_for):
    auth = env.make(plugins=[username()])
    await sign_up(browser_for(auth), "Ada_L")
    before = env.db.snapshot()
    r = await sign_up(browser_for(auth), "ADA_l", email="other@example.com")
    assert r.status_code == 400 and r.json() == {
        "code": "USERNAME_IS_ALREADY_TAKEN",
        "message": "Username is already taken. Please try another.",
    }
    assert env.db.snapshot() == before


async def test_a_non_string_username_is_a_validation_error(env, browser_for):
    r = await sign_up(browser_for(env.make(plugins=[username()])), 12345)
    assert r.status_code == 400 and r.json()["code"] == "VALIDATION_ERROR"
    assert "[body.username]" in r.json()["message"]


async def test_racing_sign_ups_for_one_username_create_one_account(env, browser_for):
    auth = env.make(plugins=[username()])
    results = await asyncio.gather(
        *(sign_up(browser_for(auth), "Racer", email=f"r{i}@example.com") for i in range(6))
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 400, 400, 400, 400, 400]
    assert all(r.json()["code"] == "USERNAME_IS_ALREADY_TAKEN" for r in results if r.status_code == 400)
    assert env.db.rows('SELECT COUNT(*) FROM "user" WHERE "username" = ?', "racer") == [(1,)]
    assert env.db.count("account") == 1


# --- sign-in ---------------------------------------------------------------------------------------


async def test_sign_in_with_a_username(env, browser_for):
    auth = env.make(plugins=[username()])
    user_id = (await sign_up(browser_for(auth), "Ada_L")).json()["user"]["id"]
    b = browser_for(auth)
    r = await sign_in(b, "ADA_L")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"redirect", "token", "user"} and body["redirect"] is False
    assert body["user"]["id"] == user_id and body["user"]["displayUsername"] == "Ada_L"
    assert b.cookies["better-auth.session_token"].startswith(body["token"] + ".")
    assert (await b.session())["user"]["id"] == user_id


async def test_sign_in_with_a_callback_url_and_remember_me_off(env, browser_for):
    auth = env.make(plugins=[username()])
    await sign_up(browser_for(auth))
    r = await sign_in(browser_for(auth), callbackURL="/dashboard", rememberMe=False)
    assert r.status_code == 200
    assert (r.json()["redirect"], r.json()["url"]) == (True, "/dashboard")
    assert r.headers["location"] == "/dashboard"
    assert "better-auth.dont_remember=" in r.headers["set-cookie"]


@pytest.mark.parametrize(
    ("name", "password", "status", "code"),
    [
        ("Ada_L", "wrong-password", 401, "INVALID_USERNAME_OR_PASSWORD"),
        ("nobody", "correct-horse", 401, "INVALID_USERNAME_OR_PASSWORD"),
        ("", "correct-horse", 401, "INVALID_USERNAME_OR_PASSWORD"),
        ("Ada_L", "", 401, "INVALID_USERNAME_OR_PASSWORD"),
        ("ab", "correct-horse", 422, "USERNAME_TOO_SHORT"),
        ("a" * 31, "correct-horse", 422, "USERNAME_TOO_LONG"),
        ("ada l", "correct-horse", 422, "INVALID_USERNAME"),
    ],
)
async def test_sign_in_errors(env, browser_for, name, password, status, code):
    auth = env.make(plugins=[username()])
    await sign_up(browser_for(auth))
    before = env.db.snapshot()
    r = await sign_in(browser_for(auth), name, password)
    assert (r.status_code, r.json()["code"]) == (status, code)
    assert "set-cookie" not in r.headers
    assert env.db.snapshot() == before


async def test_sign_in_needs_a_verified_email_when_required(env, browser_for):
    from kernia import EmailPasswordOptions

    auth = env.make(
        plugins=[username()],
        email_and_password=EmailPasswordOptions(enabled=True, require_email_verification=True),
    )
    await sign_up(browser_for(auth))
    r = await sign_in(browser_for(auth))
    assert r.status_code == 403 and r.json()["code"] == "EMAIL_NOT_VERIFIED"


async def test_sign_in_is_json_only(env, browser_for):
    b = browser_for(env.make(plugins=[username()]))
    r = await b.post(
        "/sign-in/username",
        content=b"username=a&password=b",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415


# --- is-username-available --------------------------------------------------------------------


async def test_is_username_available(env, browser_for):
    auth = env.make(plugins=[username()])
    await sign_up(browser_for(auth), "Ada_L")
    b = browser_for(auth)
    assert (await b.post("/is-username-available", {"username": "ada_l"})).json() == {"available": False}
    assert (await b.post("/is-username-available", {"username": "Grace"})).json() == {"available": True}
    for name, code in [("", "INVALID_USERNAME"), ("ab", "USERNAME_TOO_SHORT"), ("a b c", "INVALID_USERNAME")]:
        r = await b.post("/is-username-available", {"username": name})
        assert (r.status_code, r.json()["code"]) == (422, code)


# --- options ---------------------------------------------------------------------------------------


async def test_custom_rules(env, browser_for):
    plugin = username(
        min_username_length=2,
        max_username_length=5,
        username_validator=lambda name: name.isalpha(),
        username_normalization=lambda name: name.upper(),
        display_username_normalization=lambda name: name.strip(),
    )
    auth = env.make(plugins=[plugin])
    b = browser_for(auth)
    r = await sign_up(b, "Bo", displayUsername="  Bo  ")
    assert (r.json()["user"]["username"], r.json()["user"]["displayUsername"]) == ("BO", "Bo")
    assert (await sign_up(browser_for(auth), "b0b", email="x@example.com")).json()[
        "code"
    ] == "INVALID_USERNAME"
    assert (await sign_up(browser_for(auth), "bobbyy", email="y@example.com")).json()[
        "code"
    ] == "USERNAME_TOO_LONG"
    assert (await sign_in(browser_for(auth), "bo")).status_code == 200


async def test_async_validators_and_post_normalization_order(env, browser_for):
    async def validator(name):
        return name == name.lower()  # only meaningful on the stored form

    plugin = username(username_validator=validator, username_validation_order="post-normalization")
    auth = env.make(plugins=[plugin])
    assert (await sign_up(browser_for(auth), "MixedCase")).status_code == 200
    strict = env.make(plugins=[username(username_validator=validator)])
    r = await sign_up(browser_for(strict), "OtherCase", email="o@example.com")
    assert r.json()["code"] == "INVALID_USERNAME"


async def test_normalization_off_keeps_usernames_case_sensitive(env, browser_for):
    auth = env.make(plugins=[username(username_normalization=False)])
    assert (await sign_up(browser_for(auth), "Ada_L")).json()["user"]["username"] == "Ada_L"
    assert (await sign_up(browser_for(auth), "ada_l", email="b@example.com")).status_code == 200
    assert (await sign_in(browser_for(auth), "ADA_L")).status_code == 401


async def test_display_username_validator(env, browser_for):
    auth = env.make(plugins=[username(display_username_validator=lambda d: "!" not in d)])
    r = await sign_up(browser_for(auth), "Ada_L", displayUsername="Ada!")
    assert r.status_code == 400 and r.json() == {
        "code": "INVALID_DISPLAY_USERNAME",
        "message": "Display username is invalid",
    }


async def test_a_validator_that_raises(env, browser_for):
    def broken(name):
        raise RuntimeError("boom")

    def refuses(name):
        raise APIError(400, "NO_USERNAMES_TODAY", "Come back tomorrow")

    r = await sign_up(browser_for(env.make(plugins=[username(username_validator=broken)])))
    assert r.status_code == 500 and r.json()["code"] == "CALLBACK_FAILED"
    r = await sign_up(browser_for(env.make(plugins=[username(username_validator=refuses)])))
    assert r.status_code == 400 and r.json() == {
        "code": "NO_USERNAMES_TODAY",
        "message": "Come back tomorrow",
    }
    assert env.db.count("user") == 0


async def test_routes_and_fields_exist_only_with_the_plugin(env, browser_for):
    b = browser_for(env.make())
    for path in ("/sign-in/username", "/sign-up/username", "/is-username-available"):
        assert (await b.post(path, {"username": "ada"})).status_code == 404
    user = (await sign_up(b)).json()["user"]
    assert "username" not in user and "displayUsername" not in user
    assert env.db.rows('SELECT "username" FROM "user"') == [(None,)]


def test_the_plugin_checks_its_arguments_when_built():
    from kernia.plugins import username as reexported

    assert reexported is username
    with pytest.raises(TypeError, match="min_username_length"):
        username(min_username_length="3")
    with pytest.raises(ValueError, match="min_username_length"):
        username(min_username_length=10, max_username_length=5)
    with pytest.raises(TypeError, match="username_validator"):
        username(username_validator="^[a-z]+$")
    with pytest.raises(ValueError, match="username_validation_order"):
        username(username_validation_order="sometimes")
    with pytest.raises(TypeError):
        username(3)


# --- Kernia's /sign-up/username ---------------------------------------------------------------------


async def test_kernia_sign_up_username_without_an_email(env, browser_for):
    auth = env.make(plugins=[username()])
    b = browser_for(auth)
    r = await b.post("/sign-up/username", {"username": "Ada_L", "password": "correct-horse"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"token", "user"}
    user = body["user"]
    assert (user["username"], user["displayUsername"], user["name"]) == ("ada_l", "Ada_L", "Ada_L")
    assert user["email"] == f"{user['id'].lower()}@username.placeholder.invalid"
    assert (await b.session())["user"]["id"] == user["id"]
    assert (await sign_in(browser_for(auth), "ada_l")).status_code == 200


async def test_kernia_sign_up_username_with_an_email_and_its_errors(env, browser_for):
    auth = env.make(plugins=[username()])
    body = {"username": "Ada_L", "password": "correct-horse", "email": "Ada@Example.com", "name": "Ada"}
    r = await browser_for(auth).post("/sign-up/username", body)
    assert r.json()["user"]["email"] == "ada@example.com"
    before = env.db.snapshot()
    for patch, status, code in [
        ({"username": "grace", "email": "ADA@example.com"}, 422, "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL"),
        ({"username": "ada_l", "email": "new@example.com"}, 400, "USERNAME_IS_ALREADY_TAKEN"),
        ({"username": "grace", "email": "new@example.com", "password": "short"}, 400, "PASSWORD_TOO_SHORT"),
        ({"username": "grace", "email": "not-an-email"}, 400, "VALIDATION_ERROR"),
        ({"username": "x", "email": "new@example.com"}, 400, "USERNAME_TOO_SHORT"),
    ]:
        r = await browser_for(auth).post("/sign-up/username", {**body, **patch})
        assert (r.status_code, r.json()["code"]) == (status, code), patch
    r = await browser_for(auth).post("/sign-up/username", {"password": "correct-horse"})
    assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_ERROR")
    assert env.db.snapshot() == before


# --- guests converting through usernames ------------------------------------------------------------


async def test_a_guest_converts_by_signing_up_with_a_username(env, browser_for):
    cart_table(env)
    on_link = Recorder()
    b = browser_for(env.make(plugins=[anonymous(on_link=on_link), username()]))
    guest_id = (await guest(b))["user"]["id"]
    env.db.execute('INSERT INTO "cart" VALUES (?, ?, ?)', "c1", guest_id, "book")
    r = await sign_up(b, "New_User")
    assert r.status_code == 200, r.text
    new_id = r.json()["user"]["id"]
    assert on_link.calls == [(guest_id, new_id)]
    assert env.db.rows('SELECT "id", "username" FROM "user"') == [(new_id, "new_user")]
    assert env.db.rows('SELECT "user_id" FROM "cart"') == [(new_id,)]
    session = await b.session()
    assert session["user"]["id"] == new_id and session["user"]["isAnonymous"] is False


async def test_a_guest_converts_through_kernias_sign_up_username(env, browser_for):
    on_link = Recorder()
    cart_table(env)
    b = browser_for(env.make(plugins=[anonymous(on_link=on_link), username()]))
    guest_id = (await guest(b))["user"]["id"]
    r = await b.post("/sign-up/username", {"username": "Ada_L", "password": "correct-horse"})
    assert on_link.calls == [(guest_id, r.json()["user"]["id"])]
    assert env.db.count("user") == 1


async def test_a_guest_converts_by_signing_in_with_a_username(env, browser_for):
    cart_table(env)
    on_link = Recorder()
    auth = env.make(plugins=[anonymous(on_link=on_link), username()])
    owner = browser_for(auth)
    existing = (await sign_up(owner, "Owner")).json()["user"]["id"]
    b = browser_for(auth)
    guest_id = (await guest(b))["user"]["id"]
    env.db.execute('INSERT INTO "cart" VALUES (?, ?, ?)', "c1", guest_id, "book")
    r = await sign_in(b, "owner")
    assert r.status_code == 200 and r.json()["user"]["id"] == existing
    assert on_link.calls == [(guest_id, existing)]
    env.db.assert_gone(guest_id)
    assert env.db.rows('SELECT "user_id" FROM "cart"') == [(existing,)]
    assert (await owner.session())["user"]["id"] == existing


async def test_the_guest_is_kept_when_deletion_is_disabled(env, browser_for):
    on_link = Recorder()
    cart_table(env)
    auth = env.make(plugins=[anonymous(on_link=on_link, disable_delete_anonymous_user=True), username()])
    b = browser_for(auth)
    guest_id = (await guest(b))["user"]["id"]
    new_id = (await sign_up(b, "Keeper")).json()["user"]["id"]
    assert on_link.calls == [(guest_id, new_id)]
    assert {r[0] for r in env.db.rows('SELECT "id" FROM "user"')} == {guest_id, new_id}
    assert env.db.rows('SELECT COUNT(*) FROM "session" WHERE "userId" = ?', guest_id) == [(0,)]


@pytest.mark.parametrize("path", ["sign-up", "sign-in"])
async def test_a_failing_on_link_undoes_a_username_conversion(env, browser_for, path):
    on_link = Recorder(fail=APIError(409, "CART_CONFLICT", "The cart could not be moved"))
    auth = env.make(plugins=[anonymous(on_link=on_link), username()])
    if path == "sign-in":
        await sign_up(browser_for(auth), "Owner")
    cart_table(env)
    b = browser_for(auth)
    guest_id = (await guest(b))["user"]["id"]
    env.db.execute('INSERT INTO "cart" VALUES (?, ?, ?)', "c1", guest_id, "book")
    before = env.db.snapshot()

    def attempt():
        return sign_up(b, "Fresh", email="fresh@example.com") if path == "sign-up" else sign_in(b, "owner")

    r = await attempt()
    assert r.status_code == 409 and r.json()["code"] == "CART_CONFLICT"
    assert "set-cookie" not in r.headers
    assert env.db.snapshot() == before
    assert env.db.rows('SELECT "user_id" FROM "cart"') == [(guest_id,)]
    assert (await b.session())["user"]["id"] == guest_id

    on_link.fail = None
    r = await attempt()
    assert r.status_code == 200
    assert env.db.rows('SELECT "user_id" FROM "cart"') == [(r.json()["user"]["id"],)]
    env.db.assert_gone(guest_id)


async def test_two_tabs_signing_in_with_a_username_convert_the_guest_once(env, browser_for):
    cart_table(env)
    on_link = Recorder()
    auth = env.make(plugins=[anonymous(on_link=on_link), username()])
    existing = (await sign_up(browser_for(auth), "Owner")).json()["user"]["id"]
    b = browser_for(auth)
    guest_id = (await guest(b))["user"]["id"]
    env.db.execute('INSERT INTO "cart" VALUES (?, ?, ?)', "c1", guest_id, "book")
    tab2 = browser_for(auth)
    tab2.cookies = dict(b.cookies)
    r1, r2 = await while_held(on_link, sign_in(b, "owner"), sign_in(tab2, "owner"))
    assert (r1.status_code, r2.status_code) == (200, 200)
    assert on_link.calls == [(guest_id, existing)]
    assert env.db.rows('SELECT "user_id" FROM "cart"') == [(existing,)]
    env.db.assert_gone(guest_id)


async def test_the_default_sign_in_rate_limit_covers_username_sign_in(env, browser_for):
    auth = env.make(plugins=[username()], rate_limit=RateLimitOptions(enabled=True))
    b = browser_for(auth)
    codes = [(await sign_in(b, "nobody")).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
