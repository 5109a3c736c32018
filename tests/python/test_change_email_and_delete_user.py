"""Changing one's email (account-routes spec §3, §7.3 b-d) and deleting one's
account (§4)."""

from __future__ import annotations

from helpers import Mailbox, guest

from kernia import (
    APIError,
    ChangeEmailOptions,
    DeleteUserOptions,
    EmailVerificationOptions,
    UserOptions,
)
from kernia.plugins.anonymous import anonymous
from kernia.testing import advance_clock

from conftest import set_cookies

DAY = 86_400
TOKEN = "better-auth.session_token"


def error(r) -> tuple[int, str | None]:
    return r.status_code, r.json().get("code")


def emails(env) -> list[tuple[str, bool]]:
    return [
        (e, bool(v)) for e, v in env.db.rows('SELECT "email", "emailVerified" FROM "user" ORDER BY "email"')
    ]


def changing(mailbox: Mailbox, confirm: bool = False, at_once: bool = False) -> dict:
    change = ChangeEmailOptions(
        enabled=True,
        send_change_email_confirmation=mailbox.sender("confirm") if confirm else None,
        update_email_without_verification=at_once,
    )
    return {
        "user": UserOptions(change_email=change),
        "email_verification": EmailVerificationOptions(send_verification_email=mailbox.sender("verify")),
    }


# --- change-email -----------------------------------------------------------------------------


async def test_an_unverified_user_changes_email_by_opening_the_link_at_the_new_address(env, browser_for):
    mailbox = Mailbox()
    b = browser_for(env.make(**changing(mailbox)))
    await b.sign_up()
    r = await b.post("/change-email", {"newEmail": "Ada.New@example.com", "callbackURL": "/settings"})
    assert (r.status_code, r.json()) == (200, {"status": True}) and "set-cookie" not in r.headers
    mail = mailbox.last("verify")
    assert mail["user"]["email"] == "ada.new@example.com"  # to the new address
    assert emails(env) == [("ada@example.com", False)]  # nothing changes yet
    r = await b.get(mailbox.link("verify").replace("callbackURL=%2Fsettings", "callbackURL="))
    assert r.status_code == 200 and r.json()["user"]["email"] == "ada.new@example.com"
    assert TOKEN in set_cookies(r)
    assert emails(env) == [("ada.new@example.com", False)]  # still unverified, as in Better Auth
    r = await b.get(mailbox.link("verify"))
    assert r.headers["location"] == "/settings?error=INVALID_TOKEN"  # the link is dead now


async def test_a_verified_user_confirms_from_the_old_address_first(env, browser_for):
    mailbox = Mailbox()
    b = browser_for(env.make(**changing(mailbox, confirm=True)))
    await b.sign_up()
    env.db.execute('UPDATE "user" SET "emailVerified" = ?', True)
    assert (await b.post("/change-email", {"newEmail": "new@example.com"})).status_code == 200
    confirm = mailbox.last("confirm")
    assert (confirm["user"]["email"], confirm["new_email"], confirm["newEmail"]) == (
        "ada@example.com",
        "new@example.com",
        "new@example.com",
    )
    assert mailbox.of("verify") == []
    r = await b.get(mailbox.link("confirm"))
    assert r.status_code == 302 and emails(env) == [("ada@example.com", True)]
    assert mailbox.last("verify")["user"]["email"] == "new@example.com"
    r = await b.get(mailbox.link("verify"))
    assert r.status_code == 302 and emails(env) == [("new@example.com", True)]


async def test_another_signed_in_user_cannot_open_a_change_link(env, browser_for):
    mailbox = Mailbox()
    auth = env.make(**changing(mailbox))
    b = browser_for(auth)
    await b.sign_up()
    await b.post("/change-email", {"newEmail": "new@example.com"})
    other = browser_for(auth)
    await other.sign_up(email="grace@example.com")
    path = mailbox.link("verify").split("&callbackURL")[0]
    assert error(await other.get(path)) == (401, "INVALID_USER")
    assert (await browser_for(auth).get(path)).status_code == 200  # signed out is fine
    assert emails(env) == [("grace@example.com", False), ("new@example.com", False)]


async def test_update_email_without_verification(env, browser_for):
    mailbox = Mailbox()
    b = browser_for(env.make(**changing(mailbox, at_once=True)))
    await b.sign_up()
    r = await b.post("/change-email", {"newEmail": "new@example.com"})
    assert r.status_code == 200 and TOKEN in set_cookies(r)
    assert emails(env) == [("new@example.com", False)]
    assert mailbox.last("verify")["user"]["email"] == "new@example.com"  # a plain verification


async def test_change_email_refusals(env, browser_for):
    mailbox = Mailbox()
    b = browser_for(env.make(**changing(mailbox)))
    await b.sign_up()
    r = await b.post("/change-email", {"newEmail": "ADA@example.com"})
    assert (r.status_code, r.json()) == (400, {"message": "Email is the same"})
    assert error(await b.post("/change-email", {"newEmail": "nope"})) == (400, "VALIDATION_ERROR")
    r = await b.post("/change-email", {"newEmail": "x@example.com", "callbackURL": "https://evil.example"})
    assert error(r) == (403, "INVALID_CALLBACK_URL")
    assert mailbox.sent == []


async def test_a_taken_address_gets_the_same_answer_and_no_mail(env, browser_for):
    mailbox = Mailbox()
    auth = env.make(**changing(mailbox))
    await browser_for(auth).sign_up(email="grace@example.com")
    b = browser_for(auth)
    await b.sign_up()
    r = await b.post("/change-email", {"newEmail": "grace@example.com"})
    assert (r.status_code, r.json()) == (200, {"status": True}) and mailbox.sent == []


async def test_change_email_off_or_without_a_sender(env, browser_for):
    b = browser_for(env.make())
    await b.sign_up()
    assert error(await b.post("/change-email", {"newEmail": "new@example.com"})) == (
        400,
        "CHANGE_EMAIL_DISABLED",
    )
    b = browser_for(env.make(user=UserOptions(change_email=ChangeEmailOptions(enabled=True))))
    await b.sign_up(email="grace@example.com")
    r = await b.post("/change-email", {"newEmail": "new@example.com"})
    assert (r.status_code, r.json()) == (400, {"message": "Verification email isn't enabled"})
    assert error(await browser_for(env.make()).post("/change-email", {"newEmail": "n@example.com"})) == (
        401,
        "UNAUTHORIZED",
    )


async def test_a_guest_changing_its_email_stays_a_guest(env, browser_for):
    mailbox = Mailbox()
    b = browser_for(env.make(**changing(mailbox), plugins=[anonymous()]))
    g = (await guest(b))["user"]
    assert (await b.post("/change-email", {"newEmail": "guest@example.com"})).status_code == 200
    assert (await b.get(mailbox.link("verify"))).status_code == 302
    me = (await b.session())["user"]
    assert (me["id"], me["email"], me["isAnonymous"]) == (g["id"], "guest@example.com", True)


# --- delete-user ------------------------------------------------------------------------------


def deleting(mailbox: Mailbox | None = None, **kw) -> UserOptions:
    sender = mailbox.sender("delete") if mailbox else None
    return UserOptions(
        delete_user=DeleteUserOptions(enabled=True, send_delete_account_verification=sender, **kw)
    )


async def test_delete_user_is_off_unless_enabled(env, browser_for):
    b = browser_for(env.make())
    await b.sign_up()
    r = await b.post("/delete-user", {})
    assert (r.status_code, r.content) == (404, b"")
    r = await b.get("/delete-user/callback", params={"token": "x"})
    assert (r.status_code, r.json()) == (404, {"code": "NOT_FOUND", "message": "Not found"})
    assert env.db.count("user") == 1


async def test_immediate_deletion_needs_a_fresh_session_or_the_password(env, browser_for):
    seen = []
    options = deleting(before_delete=lambda u, c: seen.append(("before", u["id"])))
    options.delete_user.after_delete = lambda u, c: seen.append(("after", u["id"]))
    auth = env.make(user=options)
    b = browser_for(auth)
    user_id = (await b.sign_up()).json()["user"]["id"]
    advance_clock(auth, DAY + 1)
    assert error(await b.post("/delete-user", {})) == (400, "SESSION_EXPIRED")
    assert error(await b.post("/delete-user", {"password": "wrong-horse"})) == (400, "INVALID_PASSWORD")
    assert env.db.count("user") == 1 and seen == []
    r = await b.post("/delete-user", {"password": "correct-horse"})
    assert (r.status_code, r.json()) == (200, {"success": True, "message": "User deleted"})
    assert "max-age=0" in set_cookies(r)[TOKEN].lower()
    env.db.assert_gone(user_id)
    assert seen == [("before", user_id), ("after", user_id)]


async def test_before_delete_can_refuse(env, browser_for):
    def refuse(user, ctx):
        raise APIError(409, "HAS_ORDERS", "Close your open orders first")

    b = browser_for(env.make(user=deleting(before_delete=refuse)))
    await b.sign_up()
    assert error(await b.post("/delete-user", {})) == (409, "HAS_ORDERS")
    assert env.db.count("user") == 1 and (await b.session()) is not None


async def test_deletion_by_mailed_link(env, browser_for):
    mailbox = Mailbox()
    auth = env.make(user=deleting(mailbox))
    b = browser_for(auth)
    user_id = (await b.sign_up()).json()["user"]["id"]
    r = await b.post("/delete-user", {"password": "correct-horse", "callbackURL": "/goodbye"})
    assert (r.status_code, r.json()) == (200, {"success": True, "message": "Verification email sent"})
    assert env.db.count("user") == 1  # a correct password does not delete in this mode
    mail = mailbox.last("delete")
    assert len(mail["token"]) == 32 and mail["url"].endswith(f"token={mail['token']}&callbackURL=%2Fgoodbye")
    assert env.db.rows('SELECT "identifier", "value" FROM "verification"') == [
        (f"delete-account-{mail['token']}", user_id)
    ]
    # Opened signed out: refused, and the link still works.
    r = await browser_for(auth).get(mailbox.link("delete"))
    assert error(r) == (404, "FAILED_TO_GET_USER_INFO") and env.db.count("verification") == 1
    r = await b.get(mailbox.link("delete"))
    assert (r.status_code, r.headers["location"]) == (302, "/goodbye")
    env.db.assert_gone(user_id)
    assert env.db.count("verification") == 0


async def with_deletion_link(env, browser_for):
    """A signed-up user's browser that asked for a deletion link; the engine; the mailbox."""
    mailbox = Mailbox()
    auth = env.make(user=deleting(mailbox))
    b = browser_for(auth)
    await b.sign_up()
    r = await b.post("/delete-user", {})
    assert r.json() == {"success": True, "message": "Verification email sent"}
    return b, auth, mailbox


async def test_a_deletion_link_opened_by_someone_else_is_spent(env, browser_for):
    b, auth, mailbox = await with_deletion_link(env, browser_for)
    other = browser_for(auth)
    await other.sign_up(email="grace@example.com")
    assert error(await other.get(mailbox.link("delete"))) == (404, "INVALID_TOKEN")
    assert env.db.count("user") == 2 and env.db.count("verification") == 0
    assert error(await b.get(mailbox.link("delete"))) == (404, "INVALID_TOKEN")


async def test_delete_with_the_mailed_token_in_the_body(env, browser_for):
    b, _, mailbox = await with_deletion_link(env, browser_for)
    assert error(await b.post("/delete-user", {"token": "not-the-token"})) == (404, "INVALID_TOKEN")
    r = await b.post("/delete-user", {"token": mailbox.last("delete")["token"]})
    assert (r.status_code, r.json()) == (200, {"success": True, "message": "User deleted"})
    assert env.db.count("user") == 0


async def test_a_guest_can_delete_itself(env, browser_for):
    b = browser_for(env.make(user=deleting(), plugins=[anonymous()]))
    g = (await guest(b))["user"]
    assert (await b.post("/delete-user", {})).status_code == 200
    env.db.assert_gone(g["id"])
