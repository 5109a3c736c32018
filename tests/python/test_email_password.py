"""Sign-up and sign-in by email and password (spec §6), end to end through the ASGI app."""

from __future__ import annotations

import re

import pytest
from helpers import SESSION_KEYS

from conftest import parse_iso, set_cookies

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def test_sign_up_creates_user_account_and_session(env, browser_for):
    b = browser_for(env.make())
    r = await b.sign_up(email="Ada@Example.com", image="https://img.example.com/a.png")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"token", "user"}
    user = body["user"]
    assert set(user) == {"id", "name", "email", "emailVerified", "image", "createdAt", "updatedAt"}
    assert user["email"] == "ada@example.com"  # lower-cased
    assert user["name"] == "Ada" and user["emailVerified"] is False
    assert user["image"] == "https://img.example.com/a.png"
    assert ISO.match(user["createdAt"]) and ISO.match(user["updatedAt"])
    assert re.fullmatch(r"[A-Za-z0-9]{32}", user["id"])
    assert re.fullmatch(r"[A-Za-z0-9]{32}", body["token"])

    cookie = set_cookies(r)["better-auth.session_token"]
    assert cookie.startswith(f"better-auth.session_token={body['token']}.")
    assert cookie.endswith("; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax")

    db = env.db
    assert db.rows('SELECT "email", "emailVerified" FROM "user"') == [
        ("ada@example.com", False if env.backend == "postgres" else 0)
    ]
    [(provider, account_id, user_id, password)] = db.rows(
        'SELECT "providerId", "accountId", "userId", "password" FROM "account"'
    )
    assert (provider, account_id, user_id) == ("credential", user["id"], user["id"])
    assert re.fullmatch(r"[0-9a-f]{32}:[0-9a-f]{128}", password)
    assert db.rows('SELECT "token", "userId" FROM "session"') == [(body["token"], user["id"])]


async def test_sign_up_then_session_then_sign_out_then_sign_in(env, browser_for):
    b = browser_for(env.make())
    user = (await b.sign_up()).json()["user"]
    s = await b.session()
    assert s["user"] == user
    assert s["session"]["userId"] == user["id"]
    assert set(s["session"]) == SESSION_KEYS

    out = await b.post("/sign-out", {})
    assert out.status_code == 200 and out.json() == {"success": True}
    assert "Max-Age=0" in set_cookies(out)["better-auth.session_token"]
    assert env.db.count("session") == 0
    assert await b.session() is None

    r = await b.sign_in()
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["redirect", "token", "user"]
    assert body["redirect"] is False and body["user"] == user
    assert (await b.session())["user"]["id"] == user["id"]


async def test_sign_in_with_callback_url_sets_redirect_and_location(env, browser_for):
    b = browser_for(env.make())
    await b.sign_up()
    r = await b.sign_in(callbackURL="/dashboard")
    body = r.json()
    assert body["redirect"] is True and body["url"] == "/dashboard"
    assert r.headers["location"] == "/dashboard"
    assert r.status_code == 200


async def test_sign_in_with_untrusted_callback_url_is_refused(env, browser_for):
    b = browser_for(env.make())
    await b.sign_up()
    r = await b.sign_in(callbackURL="https://evil.example.net/steal")
    assert r.status_code == 403 and r.json()["code"] == "INVALID_CALLBACK_URL"


@pytest.mark.parametrize("value", [42, ["/a"], {"url": "/a"}])
async def test_a_callback_url_that_is_not_a_string_is_400(env, browser_for, value):
    # Spec §13.2: a message only, no code.
    b = browser_for(env.make())
    await b.sign_up()
    r = await b.sign_in(callbackURL=value)
    assert r.status_code == 400
    assert r.json() == {"message": "Invalid callbackURL: expected a string"}


async def test_wrong_password_and_unknown_email_are_the_same_401(env, browser_for):
    b = browser_for(env.make())
    await b.sign_up()
    before = env.db.snapshot()
    for r in (await b.sign_in(password="wrong-password"), await b.sign_in(email="nobody@example.com")):
        assert r.status_code == 401
        assert r.json() == {"code": "INVALID_EMAIL_OR_PASSWORD", "message": "Invalid email or password"}
        assert "set-cookie" not in r.headers
    assert env.db.snapshot() == before


async def test_sign_in_is_case_insensitive_on_email(env, browser_for):
    b = browser_for(env.make())
    await b.sign_up(email="grace@example.com")
    assert (await b.sign_in(email="GRACE@example.com")).status_code == 200


async def test_sign_in_with_an_invalid_email_is_400(env, browser_for):
    r = await browser_for(env.make()).sign_in(email="not-an-email")
    assert r.status_code == 400 and r.json()["code"] == "INVALID_EMAIL"


async def test_duplicate_email_is_422_and_changes_nothing(env, browser_for):
    b = browser_for(env.make())
    await b.sign_up(email="dup@example.com")
    before = env.db.snapshot()
    r = await browser_for(env.make()).sign_up(email="DUP@example.com")
    assert r.status_code == 422
    assert r.json() == {
        "code": "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL",
        "message": "User already exists. Use another email.",
    }
    assert env.db.snapshot() == before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"email": "a@b.co", "password": "password123"},
            "[body.name] Invalid input: expected string, received undefined",
        ),
        (
            {"name": "A", "password": "password123"},
            "[body.email] Invalid input: expected string, received undefined",
        ),
        (
            {"name": "A", "email": "a@b.co"},
            "[body.password] Invalid input: expected string, received undefined",
        ),
        (
            {"name": 5, "email": "a@b.co", "password": "password123"},
            "[body.name] Invalid input: expected string, received number",
        ),
        (
            {"name": "A", "email": "a@b.co", "password": ["x"]},
            "[body.password] Invalid input: expected string, received array",
        ),
        ({"name": "A", "email": "nope", "password": "password123"}, "[body.email] Invalid email address"),
        (
            {"name": "A", "email": "a@b.co", "password": "password123", "rememberMe": "yes"},
            "[body.rememberMe] Invalid input: expected boolean, received string",
        ),
        (
            {"name": "A", "email": "a@b.co", "password": "password123", "image": None},
            "[body.image] Invalid input: expected string, received null",
        ),
        (
            {},
            "[body.name] Invalid input: expected string, received undefined; [body.email] Invalid input: expected string, received undefined; [body.password] Invalid input: expected string, received undefined",
        ),
    ],
)
async def test_sign_up_validation_errors(env, browser_for, body, message):
    b = browser_for(env.make())
    r = await b.post("/sign-up/email", body)
    assert r.status_code == 400
    assert r.json() == {"code": "VALIDATION_ERROR", "message": message}
    assert env.db.snapshot() == {"user": 0, "session": 0, "account": 0, "verification": 0}


async def test_sign_up_body_that_is_not_an_object(env, browser_for):
    r = await browser_for(env.make()).post("/sign-up/email", [1, 2])
    assert r.status_code == 400 and r.json()["code"] == "VALIDATION_ERROR"


async def test_extra_fields_are_ignored_and_not_client_settable(env, browser_for):
    b = browser_for(env.make())
    r = await b.sign_up(emailVerified=True, isAnonymous=True, id="chosen-by-client", role="admin")
    assert r.status_code == 200
    user = r.json()["user"]
    assert user["emailVerified"] is False and user["id"] != "chosen-by-client"
    assert "role" not in user
    [(verified,)] = env.db.rows('SELECT "emailVerified" FROM "user"')
    assert not verified


@pytest.mark.parametrize(
    ("password", "code"),
    [("short", "PASSWORD_TOO_SHORT"), ("x" * 129, "PASSWORD_TOO_LONG"), ("", "PASSWORD_TOO_SHORT")],
)
async def test_password_length_limits(env, browser_for, password, code):
    b = browser_for(env.make())
    r = await b.sign_up(password=password)
    assert r.status_code == 400 and r.json()["code"] == code
    assert env.db.count("user") == 0


async def test_password_limits_are_configurable(env, browser_for):
    from kernia import EmailPasswordOptions

    b = browser_for(
        env.make(
            email_and_password=EmailPasswordOptions(
                enabled=True, min_password_length=4, max_password_length=6
            )
        )
    )
    assert (await b.sign_up(password="abcd")).status_code == 200
    assert (await b.sign_up(email="b@example.com", password="abcdefg")).json()["code"] == "PASSWORD_TOO_LONG"


async def test_form_encoded_sign_up_and_sign_in(env, browser_for):
    b = browser_for(env.make())
    r = await b.post(
        "/sign-up/email",
        data={"name": "Form", "email": "form@example.com", "password": "password123", "rememberMe": "true"},
    )
    assert r.status_code == 200, r.text
    b.cookies.clear()
    r = await b.post("/sign-in/email", data={"email": "form@example.com", "password": "password123"})
    assert r.status_code == 200


async def test_email_path_off_by_default_and_via_plugin(env, browser_for):
    from kernia import EmailPasswordOptions
    from kernia.plugins import email_and_password

    off = browser_for(env.make(email_and_password=EmailPasswordOptions()))
    r = await off.sign_up()
    assert r.status_code == 400 and r.json() == {
        "code": "EMAIL_PASSWORD_SIGN_UP_DISABLED",
        "message": "Email and password sign up is not enabled",
    }
    r = await off.sign_in()
    assert r.status_code == 400 and r.json()["code"] == "EMAIL_PASSWORD_DISABLED"

    on = browser_for(env.make(email_and_password=EmailPasswordOptions(), plugins=[email_and_password()]))
    assert (await on.sign_up()).status_code == 200


async def test_disable_sign_up_keeps_sign_in(env, browser_for):
    from kernia import EmailPasswordOptions

    b = browser_for(env.make())
    await b.sign_up()
    closed = browser_for(
        env.make(email_and_password=EmailPasswordOptions(enabled=True, disable_sign_up=True))
    )
    assert (await closed.sign_up(email="new@example.com")).json()["code"] == "EMAIL_PASSWORD_SIGN_UP_DISABLED"
    assert (await closed.sign_in()).status_code == 200


async def test_require_email_verification(env, browser_for):
    from kernia import EmailPasswordOptions

    b = browser_for(
        env.make(email_and_password=EmailPasswordOptions(enabled=True, require_email_verification=True))
    )
    r = await b.sign_up()
    assert r.status_code == 200 and r.json()["token"] is None
    assert "set-cookie" not in r.headers
    r = await b.sign_in()
    assert r.status_code == 403 and r.json()["code"] == "EMAIL_NOT_VERIFIED"
    # A second sign-up with the same email does not reveal that it exists.
    r = await b.sign_up()
    assert r.status_code == 200 and r.json()["token"] is None
    assert env.db.count("user") == 1


async def test_remember_me_false_makes_a_browser_session(env, browser_for):
    b = browser_for(env.make())
    await b.sign_up()
    b.cookies.clear()
    r = await b.sign_in(rememberMe=False)
    cookies = set_cookies(r)
    assert "Max-Age" not in cookies["better-auth.session_token"]
    assert cookies["better-auth.dont_remember"].startswith("better-auth.dont_remember=true.")
    session = (await b.session())["session"]
    lifetime = parse_iso(session["expiresAt"]) - parse_iso(session["createdAt"])
    assert lifetime.total_seconds() == pytest.approx(86400, abs=2)
    # get-session does not turn a browser session into a remembered one.
    assert "set-cookie" not in (await b.get("/get-session")).headers
