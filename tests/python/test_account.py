"""The account page's routes (account-routes spec §2, §5, §6): update-user,
change-password, the session list and revocations, the linked accounts."""

from __future__ import annotations

import pytest
from helpers import SESSION_KEYS, guest

from kernia.plugins.anonymous import anonymous
from kernia.plugins.username import username
from kernia.testing import advance_clock

from conftest import set_cookies

DAY = 86_400
TOKEN = "better-auth.session_token"


def error(r) -> tuple[int, str | None]:
    return r.status_code, r.json().get("code")


def user_row(env, email: str = "ada@example.com") -> dict:
    cols = ["id", "name", "image", "username", "displayUsername", "isAnonymous", "updatedAt"]
    quoted = ", ".join(f'"{c}"' for c in cols)
    [row] = env.db.rows(f'SELECT {quoted} FROM "user" WHERE "email" = ?', email)
    return dict(zip(cols, row, strict=True))


def session_tokens(env, user_id: str) -> set[str]:
    return {r[0] for r in env.db.rows('SELECT "token" FROM "session" WHERE "userId" = ?', user_id)}


async def signed_up(browser_for, auth, email="ada@example.com"):
    b = browser_for(auth)
    r = await b.sign_up(email)
    assert r.status_code == 200, r.text
    return b, r.json()["user"]["id"]


# --- update-user ------------------------------------------------------------------------------


async def test_update_user_sets_name_and_image_and_sets_the_cookie_again(env, browser_for):
    auth = env.make()
    b, _ = await signed_up(browser_for, auth)
    token = b.cookies[TOKEN]
    before = user_row(env)
    advance_clock(auth, 5)
    r = await b.post("/update-user", {"name": "Ada L.", "image": "https://img.example/a.png", "id": "x"})
    assert (r.status_code, r.json()) == (200, {"status": True})
    assert set_cookies(r)[TOKEN].startswith(f"{TOKEN}={token};") and "Max-Age=604800" in set_cookies(r)[TOKEN]
    after = user_row(env)
    assert (after["name"], after["image"], after["id"]) == (
        "Ada L.",
        "https://img.example/a.png",
        before["id"],
    )
    assert after["updatedAt"] != before["updatedAt"]
    assert (await b.session())["user"]["name"] == "Ada L."
    r = await b.post("/update-user", {"image": None})
    assert r.status_code == 200 and user_row(env)["image"] is None


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        ({"email": "new@example.com", "name": "X"}, 400, {"code": "EMAIL_CAN_NOT_BE_UPDATED", "message": "Email can not be updated"}),
        ({}, 400, {"message": "No fields to update"}),
        ({"emailVerified": True, "createdAt": "2020-01-01"}, 400, {"message": "No fields to update"}),
        ({"name": 5}, 400, {"code": "VALIDATION_ERROR", "message": "[body.name] Invalid input: expected string, received number"}),
    ],
)  # fmt: skip
async def test_update_user_refusals_change_nothing(env, browser_for, body, status, expected):
    auth = env.make()
    b, _ = await signed_up(browser_for, auth)
    before = user_row(env)
    r = await b.post("/update-user", body)
    assert (r.status_code, r.json()) == (status, expected)
    assert user_row(env) == before


async def test_update_user_needs_a_session_and_a_dead_one_loses_its_cookie(env, browser_for):
    auth = env.make()
    r = await browser_for(auth).post("/update-user", {"name": "X"})
    assert error(r) == (401, "UNAUTHORIZED") and "set-cookie" not in r.headers
    b, user_id = await signed_up(browser_for, auth)
    env.db.execute('DELETE FROM "session" WHERE "userId" = ?', user_id)
    r = await b.post("/update-user", {"name": "X"})
    assert error(r) == (401, "UNAUTHORIZED")
    assert "max-age=0" in set_cookies(r)[TOKEN].lower()


async def test_a_guest_may_rename_itself_but_not_become_a_user(env, browser_for):
    auth = env.make(plugins=[anonymous()])
    b = browser_for(auth)
    g = (await guest(b))["user"]
    r = await b.post("/update-user", {"isAnonymous": True, "name": "X"})
    assert (r.status_code, r.json()) == (
        400,
        {"code": "FIELD_NOT_ALLOWED", "message": "isAnonymous is not allowed to be set"},
    )
    r = await b.post("/update-user", {"isAnonymous": False})
    assert (r.status_code, r.json()) == (400, {"message": "No fields to update"})
    assert (await b.post("/update-user", {"name": "Guest Ada"})).status_code == 200
    row = user_row(env, g["email"])
    assert (row["name"], bool(row["isAnonymous"])) == ("Guest Ada", True)


async def test_update_user_with_the_username_plugin(env, browser_for):
    auth = env.make(plugins=[username()])
    b, _ = await signed_up(browser_for, auth)
    other, _ = await signed_up(browser_for, auth, "grace@example.com")
    assert (await other.post("/update-user", {"username": "Grace_H"})).status_code == 200
    r = await b.post("/update-user", {"username": "Ada.L", "displayUsername": "Ada L"})
    assert r.status_code == 200
    row = user_row(env)
    assert (row["username"], row["displayUsername"]) == ("ada.l", "Ada L")
    assert (await b.post("/update-user", {"username": "ADA.L"})).status_code == 200  # one's own
    assert error(await b.post("/update-user", {"username": "grace_h"})) == (400, "USERNAME_IS_ALREADY_TAKEN")
    assert error(await b.post("/update-user", {"username": "ab"})) == (400, "USERNAME_TOO_SHORT")
    assert error(await b.post("/update-user", {"username": "ada lovelace"})) == (400, "INVALID_USERNAME")
    assert user_row(env)["username"] == "ada.l"


# --- change-password --------------------------------------------------------------------------


async def test_change_password_keeps_sessions_unless_asked(env, browser_for):
    auth = env.make()
    b, user_id = await signed_up(browser_for, auth)
    laptop = browser_for(auth)
    assert (await laptop.sign_in()).status_code == 200
    r = await b.post(
        "/change-password", {"currentPassword": "correct-horse", "newPassword": "battery-staple"}
    )
    assert r.status_code == 200 and "set-cookie" not in r.headers
    assert r.json()["token"] is None and r.json()["user"]["id"] == user_id
    assert len(session_tokens(env, user_id)) == 2
    assert (await laptop.session())["user"]["id"] == user_id
    assert (await browser_for(auth).sign_in(password="correct-horse")).status_code == 401
    assert (await browser_for(auth).sign_in(password="battery-staple")).status_code == 200


async def test_change_password_revoking_the_other_sessions(env, browser_for):
    auth = env.make()
    b, user_id = await signed_up(browser_for, auth)
    old_token = b.cookies[TOKEN]
    laptop = browser_for(auth)
    await laptop.sign_in()
    body = {"currentPassword": "correct-horse", "newPassword": "battery-staple", "revokeOtherSessions": True}
    r = await b.post("/change-password", body)
    assert r.status_code == 200
    new_token = r.json()["token"]
    assert session_tokens(env, user_id) == {new_token}
    assert b.cookies[TOKEN] != old_token and (await b.session())["session"]["token"] == new_token
    assert await laptop.session() is None


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"currentPassword": "wrong-horse", "newPassword": "battery-staple"}, "INVALID_PASSWORD"),
        ({"currentPassword": "correct-horse", "newPassword": "short"}, "PASSWORD_TOO_SHORT"),
        ({"currentPassword": "correct-horse", "newPassword": "x" * 129}, "PASSWORD_TOO_LONG"),
        ({"currentPassword": "x" * 129, "newPassword": "battery-staple"}, "PASSWORD_TOO_LONG"),
    ],
)
async def test_change_password_refusals_change_nothing(env, browser_for, body, code):
    auth = env.make()
    b, _ = await signed_up(browser_for, auth)
    before = env.db.rows('SELECT "password", "updatedAt" FROM "account"')
    assert error(await b.post("/change-password", body)) == (400, code)
    assert env.db.rows('SELECT "password", "updatedAt" FROM "account"') == before


async def test_a_guest_has_no_password_to_change(env, browser_for):
    b = browser_for(env.make(plugins=[anonymous()]))
    await guest(b)
    r = await b.post("/change-password", {"currentPassword": "whatever-1", "newPassword": "battery-staple"})
    assert error(r) == (400, "CREDENTIAL_ACCOUNT_NOT_FOUND")


# --- sessions ---------------------------------------------------------------------------------


async def test_list_sessions_shows_the_users_live_sessions_with_tokens(env, browser_for):
    auth = env.make()
    b, user_id = await signed_up(browser_for, auth)
    laptop = browser_for(auth)
    body = {"email": "ada@example.com", "password": "correct-horse"}
    assert (await laptop.post("/sign-in/email", body, headers={"user-agent": "laptop/1"})).status_code == 200
    await signed_up(browser_for, auth, "grace@example.com")
    long_ago = when(env, "2020-01-01")
    env.db.execute(
        'INSERT INTO "session" ("id","token","userId","expiresAt","createdAt","updatedAt") VALUES (?,?,?,?,?,?)',
        "old",
        "expired-token",
        user_id,
        long_ago,
        long_ago,
        long_ago,
    )
    r = await b.get("/list-sessions")
    assert r.status_code == 200
    listed = r.json()
    assert {s["token"] for s in listed} == session_tokens(env, user_id) - {"expired-token"}
    assert all(s["userId"] == user_id for s in listed) and len(listed) == 2
    assert set(listed[0]) == SESSION_KEYS
    assert "laptop/1" in {s["userAgent"] for s in listed}


def when(env, day: str):
    """A date as the backend stores it: ISO text on SQLite, a datetime on PostgreSQL."""
    from datetime import UTC, datetime

    moment = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z") if env.backend == "sqlite" else moment


async def test_list_sessions_needs_a_fresh_session(env, browser_for):
    auth = env.make()
    b, _ = await signed_up(browser_for, auth)
    advance_clock(auth, DAY + 1)
    assert error(await b.get("/list-sessions")) == (403, "SESSION_NOT_FRESH")
    assert (await b.sign_in()).status_code == 200  # a new sign-in is fresh
    assert (await b.get("/list-sessions")).status_code == 200
    assert error(await browser_for(auth).get("/list-sessions")) == (401, "UNAUTHORIZED")


async def test_fresh_age_zero_turns_the_check_off(env, browser_for):
    from kernia import SessionOptions

    auth = env.make(session=SessionOptions(fresh_age=0))
    b, _ = await signed_up(browser_for, auth)
    advance_clock(auth, 5 * DAY)
    assert (await b.get("/list-sessions")).status_code == 200


async def test_revoke_session(env, browser_for):
    auth = env.make()
    b, user_id = await signed_up(browser_for, auth)
    laptop = browser_for(auth)
    laptop_token = (await laptop.sign_in()).json()["token"]
    _, other_id = await signed_up(browser_for, auth, "grace@example.com")
    [other_token] = session_tokens(env, other_id)
    # Someone else's token and an unknown one: 200, nothing happens.
    for token in (other_token, "no-such-token"):
        r = await b.post("/revoke-session", {"token": token})
        assert (r.status_code, r.json()) == (200, {"status": True}) and "set-cookie" not in r.headers
    assert session_tokens(env, other_id) == {other_token}
    r = await b.post("/revoke-session", {"token": laptop_token})
    assert r.status_code == 200 and await laptop.session() is None
    own = (await b.session())["session"]["token"]
    r = await b.post("/revoke-session", {"token": own})
    assert r.status_code == 200 and "max-age=0" in set_cookies(r)[TOKEN].lower()
    assert session_tokens(env, user_id) == set()
    assert error(await b.post("/revoke-session", {"token": own})) == (401, "UNAUTHORIZED")
    # The body is checked first, as Better Auth's schema is.
    r = await b.post("/revoke-session", {})
    assert error(r) == (400, "VALIDATION_ERROR") and "[body.token]" in r.json()["message"]


async def test_revoke_sessions_and_revoke_other_sessions(env, browser_for):
    auth = env.make()
    b, user_id = await signed_up(browser_for, auth)
    laptops = [browser_for(auth) for _ in range(2)]
    for laptop in laptops:
        await laptop.sign_in()
    mine = (await b.session())["session"]["token"]
    r = await b.post("/revoke-other-sessions", {})
    assert (r.status_code, r.json()) == (200, {"status": True}) and "set-cookie" not in r.headers
    assert session_tokens(env, user_id) == {mine}
    assert all([await laptop.session() is None for laptop in laptops])
    await laptops[0].sign_in()
    r = await b.post("/revoke-sessions", {})
    assert (r.status_code, r.json()) == (200, {"status": True})
    assert "max-age=0" in set_cookies(r)[TOKEN].lower()
    assert session_tokens(env, user_id) == set() and env.db.count("user") == 1


async def test_a_guest_may_manage_its_sessions(env, browser_for):
    auth = env.make(plugins=[anonymous()])
    b = browser_for(auth)
    g = (await guest(b))["user"]
    [listed] = (await b.get("/list-sessions")).json()
    assert listed["userId"] == g["id"]
    assert (await b.get("/list-accounts")).json() == []
    assert (await b.post("/revoke-sessions", {})).status_code == 200
    assert session_tokens(env, g["id"]) == set()


# --- accounts ---------------------------------------------------------------------------------


def add_github_account(env, user_id: str) -> str:
    now = when(env, "2026-01-01")
    env.db.execute(
        'INSERT INTO "account" ("id","accountId","providerId","userId","accessToken","scope","createdAt","updatedAt")'
        " VALUES (?,?,?,?,?,?,?,?)",
        "gh-account",
        "12345",
        "github",
        user_id,
        "secret-access-token",
        "read:user, user:email,",
        now,
        now,
    )
    return "gh-account"


async def test_list_accounts_shows_no_secrets(env, browser_for):
    auth = env.make()
    b, user_id = await signed_up(browser_for, auth)
    add_github_account(env, user_id)
    accounts = sorted((await b.get("/list-accounts")).json(), key=lambda a: a["providerId"])
    assert [set(a) for a in accounts] == [
        {"id", "providerId", "accountId", "userId", "createdAt", "updatedAt", "scopes"}
    ] * 2
    credential, github = accounts
    assert (credential["providerId"], credential["accountId"], credential["scopes"]) == (
        "credential",
        user_id,
        [],
    )
    assert (github["accountId"], github["scopes"]) == ("12345", ["read:user", "user:email"])
    assert "secret-access-token" not in (await b.get("/list-accounts")).text


async def test_unlink_account(env, browser_for):
    auth = env.make()
    b, user_id = await signed_up(browser_for, auth)
    [credential] = [a["id"] for a in (await b.get("/list-accounts")).json()]
    assert error(await b.post("/unlink-account", {"accountId": credential})) == (
        400,
        "FAILED_TO_UNLINK_LAST_ACCOUNT",
    )
    assert error(await b.post("/unlink-account", {"accountId": "nope"})) == (
        400,
        "FAILED_TO_UNLINK_LAST_ACCOUNT",
    )
    github = add_github_account(env, user_id)
    assert error(await b.post("/unlink-account", {"accountId": "nope"})) == (400, "ACCOUNT_NOT_FOUND")
    await signed_up(browser_for, auth, "grace@example.com")
    [(graces,)] = env.db.rows('SELECT "id" FROM "account" WHERE "userId" <> ?', user_id)
    assert error(await b.post("/unlink-account", {"accountId": graces})) == (400, "ACCOUNT_NOT_FOUND")
    r = await b.post("/unlink-account", {"accountId": credential})
    assert (r.status_code, r.json()) == (200, {"status": True})
    assert [a["id"] for a in (await b.get("/list-accounts")).json()] == [github]
    assert (await browser_for(auth).sign_in()).status_code == 401  # no password any more
    advance_clock(auth, DAY + 1)
    assert error(await b.post("/unlink-account", {"accountId": github})) == (403, "SESSION_NOT_FRESH")


async def test_allow_unlinking_all(env, browser_for):
    from kernia import AccountLinkingOptions, AccountOptions

    auth = env.make(account=AccountOptions(account_linking=AccountLinkingOptions(allow_unlinking_all=True)))
    b, _ = await signed_up(browser_for, auth)
    [credential] = [a["id"] for a in (await b.get("/list-accounts")).json()]
    assert (await b.post("/unlink-account", {"accountId": credential})).status_code == 200
    assert (await b.get("/list-accounts")).json() == []
    r = await b.post(
        "/change-password", {"currentPassword": "correct-horse", "newPassword": "battery-staple"}
    )
    assert error(r) == (400, "CREDENTIAL_ACCOUNT_NOT_FOUND")


async def test_account_info(env, browser_for):
    auth = env.make()
    r = await browser_for(auth).get("/account-info", params={"accountId": "x"})
    assert (r.status_code, r.content) == (401, b"")
    b, _ = await signed_up(browser_for, auth)
    [credential] = [a["id"] for a in (await b.get("/list-accounts")).json()]
    assert error(await b.get("/account-info", params={"accountId": credential})) == (
        400,
        "PROVIDER_NOT_CONFIGURED",
    )
    assert error(await b.get("/account-info", params={"accountId": "nope"})) == (400, "ACCOUNT_NOT_FOUND")
    for bad in ({}, {"accountId": "x", "extra": "1"}):
        assert error(await b.get("/account-info", params=bad)) == (400, "VALIDATION_ERROR")


# --- server-side calls ------------------------------------------------------------------------


async def test_server_side_calls(env, browser_for):
    auth = env.make()
    b, user_id = await signed_up(browser_for, auth)
    laptop = browser_for(auth)
    laptop_token = (await laptop.sign_in()).json()["token"]
    sessions = await auth.api.list_sessions(user_id)
    assert {s["token"] for s in sessions} == session_tokens(env, user_id) and len(sessions) == 2
    assert await auth.api.revoke_session(laptop_token) is True
    assert await auth.api.revoke_session(laptop_token) is False
    assert await laptop.session() is None

    updated = await auth.api.update_user(user_id, name="Ada L.", image="https://img.example/a.png")
    assert (updated["id"], updated["name"], updated["image"]) == (
        user_id,
        "Ada L.",
        "https://img.example/a.png",
    )
    assert (await auth.api.update_user(user_id, image=None))["image"] is None
    assert await auth.api.update_user("nobody", name="X") is None
    with pytest.raises(TypeError, match="unknown field"):
        await auth.api.update_user(user_id, email="x@example.com")
    with pytest.raises(ValueError, match="no fields"):
        await auth.api.update_user(user_id)
    with pytest.raises(TypeError, match="name must be str"):
        await auth.api.update_user(user_id, name=5)

    await auth.api.revoke_sessions(user_id)
    assert await b.session() is None and session_tokens(env, user_id) == set()
    assert await auth.api.delete_user(user_id) is True
    env.db.assert_gone(user_id)
    assert await auth.api.delete_user(user_id) is False


async def test_a_guest_has_no_account_to_unlink_or_inspect(env, browser_for):
    b = browser_for(env.make(plugins=[anonymous()]))
    await guest(b)
    assert error(await b.post("/unlink-account", {"accountId": "x"})) == (400, "ACCOUNT_NOT_FOUND")
    assert error(await b.get("/account-info", params={"accountId": "x"})) == (400, "ACCOUNT_NOT_FOUND")


async def test_the_mail_routes_are_rate_limited_three_a_minute(env, browser_for):
    # Better Auth's special rules: /request-password-reset and /send-verification-email
    # 3 per 60 s, /change-password 3 per 10 s, per client IP.
    from helpers import Mailbox

    from kernia import EmailPasswordOptions, RateLimitOptions

    mailbox = Mailbox()
    options = EmailPasswordOptions(enabled=True, send_reset_password=mailbox.sender("reset"))
    auth = env.make(email_and_password=options, rate_limit=RateLimitOptions())
    b = browser_for(auth)
    codes = [
        (await b.post("/request-password-reset", {"email": "x@example.com"})).status_code for _ in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    advance_clock(auth, 59)
    assert (await b.post("/request-password-reset", {"email": "x@example.com"})).status_code == 429
    advance_clock(auth, 1)
    assert (await b.post("/request-password-reset", {"email": "x@example.com"})).status_code == 200
