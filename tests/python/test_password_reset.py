"""Password reset (account-routes spec §8): the mailed single-use link, the page
redirect, the reset, and a guest who gains a password."""

from __future__ import annotations

import asyncio

import pytest
from helpers import PREFIX, Mailbox, guest

from kernia import APIError, EmailPasswordOptions, VerificationOptions
from kernia.plugins.anonymous import anonymous
from kernia.testing import advance_clock

SENT = {"status": True, "message": "If this email exists in our system, check your email for the reset link"}


def error(r) -> tuple[int, str | None]:
    return r.status_code, r.json().get("code")


def resetting(mailbox: Mailbox, **kw) -> EmailPasswordOptions:
    return EmailPasswordOptions(enabled=True, send_reset_password=mailbox.sender("reset"), **kw)


async def request_reset(b, email="ada@example.com", **extra):
    r = await b.post("/request-password-reset", {"email": email, **extra})
    assert (r.status_code, r.json()) == (200, SENT), r.text
    return r


async def with_reset_link(browser_for, auth, **extra):
    """A signed-up user's browser, with a reset link mailed."""
    b = browser_for(auth)
    assert (await b.sign_up()).status_code == 200
    await request_reset(b, **extra)
    return b


async def reset(b, mailbox: Mailbox, password: str = "battery-staple"):
    return await b.post("/reset-password", {"newPassword": password, "token": mailbox.last("reset")["token"]})


async def test_the_whole_reset(env, browser_for):
    mailbox, seen = Mailbox(), []
    auth = env.make(
        email_and_password=resetting(mailbox, on_password_reset=lambda data, ctx: seen.append(data))
    )
    b = browser_for(auth)
    user_id = (await b.sign_up()).json()["user"]["id"]
    await request_reset(browser_for(auth), "ADA@example.com", redirectTo="/reset?from=mail")
    mail = mailbox.last("reset")
    token = mail["token"]
    assert len(token) == 24 and token.isalnum() and mail["user"]["id"] == user_id
    assert mail["url"] == f"{PREFIX}/reset-password/{token}?callbackURL=%2Freset%3Ffrom%3Dmail"
    [(identifier, value)] = env.db.rows('SELECT "identifier", "value" FROM "verification"')
    assert (identifier, value) == (f"reset-password:{token}", user_id)

    page = browser_for(auth)
    r = await page.get(mailbox.link("reset"))
    assert (r.status_code, r.headers["location"]) == (
        302,
        f"http://localhost:3000/reset?from=mail&token={token}",
    )
    assert env.db.count("verification") == 1  # the page does not use the token up
    r = await page.post("/reset-password", {"newPassword": "battery-staple", "token": token})
    assert (r.status_code, r.json()) == (200, {"status": True}) and "set-cookie" not in r.headers
    assert env.db.count("verification") == 0
    assert [d["user"]["id"] for d in seen] == [user_id]
    assert (await browser_for(auth).sign_in(password="correct-horse")).status_code == 401
    assert (await browser_for(auth).sign_in(password="battery-staple")).status_code == 200
    assert (await b.session())["user"]["id"] == user_id  # sessions stay by default
    # Used up.
    r = await page.post("/reset-password", {"newPassword": "another-one", "token": token})
    assert r.json() == {"code": "INVALID_TOKEN", "message": "Invalid token"}
    r = await page.get(mailbox.link("reset"))
    assert r.headers["location"] == "http://localhost:3000/reset?from=mail&error=INVALID_TOKEN"


async def test_unknown_addresses_get_the_same_answer_and_nothing_happens(env, browser_for):
    mailbox = Mailbox()
    b = browser_for(env.make(email_and_password=resetting(mailbox)))
    await request_reset(b, "nobody@example.com")
    assert mailbox.sent == [] and env.db.count("verification") == 0


async def test_refusals(env, browser_for):
    mailbox = Mailbox()
    auth = env.make(email_and_password=resetting(mailbox))
    b = browser_for(auth)
    await b.sign_up()
    r = await b.post(
        "/request-password-reset", {"email": "ada@example.com", "redirectTo": "https://evil.example/"}
    )
    assert r.json() == {"code": "INVALID_REDIRECT_URL", "message": "Invalid redirectURL"}
    assert error(await b.post("/request-password-reset", {"email": "not-an-email"})) == (
        400,
        "VALIDATION_ERROR",
    )
    await request_reset(b)
    token = mailbox.last("reset")["token"]
    assert error(await b.post("/reset-password", {"newPassword": "battery-staple"})) == (400, "INVALID_TOKEN")
    r = await b.post("/reset-password", {"newPassword": "short", "token": token})
    assert error(r) == (400, "PASSWORD_TOO_SHORT")
    assert error(await b.post("/reset-password", {"newPassword": "battery-staple", "token": "x" * 24})) == (
        400,
        "INVALID_TOKEN",
    )
    r = await b.get(f"/reset-password/{token}")
    assert error(r) == (400, "VALIDATION_ERROR") and "[query.callbackURL]" in r.json()["message"]
    r = await b.get(f"/reset-password/{token}", params={"callbackURL": "https://evil.example/"})
    assert error(r) == (403, "INVALID_CALLBACK_URL")
    assert env.db.count("verification") == 1  # none of these used the token
    # The query's token works too.
    r = await b.post(f"/reset-password?token={token}", {"newPassword": "battery-staple"})
    assert r.status_code == 200


async def test_a_link_mailed_without_redirect_to_lands_on_the_error_page(env, browser_for):
    mailbox = Mailbox()
    auth = env.make(email_and_password=resetting(mailbox))
    b = await with_reset_link(browser_for, auth)
    assert mailbox.last("reset")["url"].endswith("?callbackURL=")
    r = await b.get(mailbox.link("reset"))
    assert (r.status_code, r.headers["location"]) == (302, f"{PREFIX}/error?error=INVALID_TOKEN")


async def test_links_expire(env, browser_for):
    mailbox = Mailbox()
    auth = env.make(email_and_password=resetting(mailbox, reset_password_token_expires_in=600))
    b = browser_for(auth)
    await b.sign_up()
    await request_reset(b, redirectTo="/reset")
    advance_clock(auth, 600)
    r = await reset(b, mailbox)
    assert error(r) == (400, "INVALID_TOKEN")
    r = await b.get(mailbox.link("reset"))
    assert r.headers["location"].endswith("/reset?error=INVALID_TOKEN")


async def test_revoke_sessions_on_password_reset(env, browser_for):
    mailbox = Mailbox()
    auth = env.make(email_and_password=resetting(mailbox, revoke_sessions_on_password_reset=True))
    b = await with_reset_link(browser_for, auth)
    r = await reset(b, mailbox)
    assert r.status_code == 200
    assert await b.session() is None and env.db.count("session") == 0


async def test_a_token_is_used_once_under_concurrent_resets(env, browser_for):
    mailbox = Mailbox()
    auth = env.make(email_and_password=resetting(mailbox))
    await with_reset_link(browser_for, auth)
    token = mailbox.last("reset")["token"]
    bodies = [{"newPassword": f"password-{i}", "token": token} for i in range(4)]
    codes = sorted(
        r.status_code
        for r in await asyncio.gather(*(browser_for(auth).post("/reset-password", x) for x in bodies))
    )
    assert codes == [200, 400, 400, 400]


async def test_a_failing_sender_is_swallowed(env, browser_for):
    mailbox = Mailbox()
    options = EmailPasswordOptions(
        enabled=True, send_reset_password=mailbox.sender("reset", fail=RuntimeError("smtp down"))
    )
    b = browser_for(env.make(email_and_password=options))
    await b.sign_up()
    await request_reset(b)  # 200: the answer must not tell whether the address exists
    assert len(mailbox.of("reset")) == 1


async def test_without_a_sender(env, browser_for):
    b = browser_for(env.make())
    r = await b.post("/request-password-reset", {"email": "ada@example.com"})
    assert r.json() == {"code": "RESET_PASSWORD_DISABLED", "message": "Reset password isn't enabled"}


async def test_hashed_identifiers(env, browser_for):
    mailbox = Mailbox()
    auth = env.make(
        email_and_password=resetting(mailbox), verification=VerificationOptions(store_identifier="hashed")
    )
    b = await with_reset_link(browser_for, auth)
    token = mailbox.last("reset")["token"]
    [(identifier,)] = env.db.rows('SELECT "identifier" FROM "verification"')
    assert token not in identifier and len(identifier) == 43
    assert (
        await b.post("/reset-password", {"newPassword": "battery-staple", "token": token})
    ).status_code == 200


async def test_expired_rows_are_swept_as_lookups_pass(env, browser_for):
    mailbox = Mailbox()
    auth = env.make(email_and_password=resetting(mailbox))
    b = await with_reset_link(browser_for, auth)
    await request_reset(b)
    advance_clock(auth, 3601)
    assert env.db.count("verification") == 2
    await request_reset(b, "nobody@example.com")  # a lookup: expired rows go
    assert env.db.count("verification") == 0


async def test_a_guest_that_resets_a_password_becomes_a_registered_account(env, browser_for):
    # Beyond Better Auth: same id, isAnonymous false, its other sessions revoked.
    mailbox = Mailbox()
    auth = env.make(email_and_password=resetting(mailbox), plugins=[anonymous()])
    b, other_device = browser_for(auth), browser_for(auth)
    g = (await guest(b))["user"]
    env.db.execute('UPDATE "user" SET "email" = ? WHERE "id" = ?', "guest@example.com", g["id"])
    other_device.cookies = dict(b.cookies)
    env.db.execute(
        'INSERT INTO "session" ("id","token","userId","expiresAt","createdAt","updatedAt") '
        'SELECT ?, ?, "userId", "expiresAt", "createdAt", "updatedAt" FROM "session" WHERE "userId" = ?',
        "second",
        "second-token",
        g["id"],
    )
    await request_reset(b, "guest@example.com")
    r = await reset(b, mailbox)
    assert r.status_code == 200
    me = (await b.session())["user"]
    assert (me["id"], me["isAnonymous"]) == (g["id"], False)
    assert env.db.rows('SELECT "token" FROM "session" WHERE "id" = ?', "second") == []
    assert (await browser_for(auth).sign_in("guest@example.com", "battery-staple")).status_code == 200
    # No longer a guest: stale-guest cleanup leaves it alone.
    advance_clock(auth, 400 * 86_400)
    assert (await auth.api.cleanup_anonymous_users(max_age=60))["stale"] == 0


@pytest.mark.parametrize("fail", [APIError(409, "NOPE", "No"), RuntimeError("bug")])
async def test_a_failing_on_password_reset_does_not_undo_the_reset(env, browser_for, fail):
    mailbox = Mailbox()

    def on_reset(data, ctx):
        raise fail

    auth = env.make(email_and_password=resetting(mailbox, on_password_reset=on_reset))
    b = await with_reset_link(browser_for, auth)
    r = await reset(b, mailbox)
    assert r.status_code == 200
    assert (await browser_for(auth).sign_in(password="battery-staple")).status_code == 200


async def test_the_error_page_escapes_what_it_shows(env, browser_for):
    b = browser_for(env.make())
    r = await b.get("/error", params={"error": "<script>alert(1)</script>", "error_description": "a & b"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<script>" not in r.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    assert "a &amp; b" in r.text
    assert "INVALID_TOKEN" in (await b.get("/error", params={"error": "INVALID_TOKEN"})).text
