"""Email verification (account-routes spec §7): the mailed JWT links, the routes
that send them, `/verify-email` and its guest conversion."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from helpers import PREFIX, Mailbox, Recorder, cart_table, guest

from kernia import EmailPasswordOptions, EmailVerificationOptions, KerniaOptions
from kernia.auth import init
from kernia.plugins.anonymous import anonymous
from kernia.testing import advance_clock

from conftest import SECRET, set_cookies

TOKEN = "better-auth.session_token"


def error(r) -> tuple[int, str | None]:
    return r.status_code, r.json().get("code")


def verifying(mailbox: Mailbox, **kw) -> EmailVerificationOptions:
    return EmailVerificationOptions(send_verification_email=mailbox.sender("verify"), **kw)


def required() -> EmailPasswordOptions:
    return EmailPasswordOptions(enabled=True, require_email_verification=True)


def claims(token: str) -> tuple[dict, dict]:
    header, payload, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return json.loads(base64.urlsafe_b64decode(pad(header))), json.loads(
        base64.urlsafe_b64decode(pad(payload))
    )


def jwt(payload: dict, secret: str = SECRET) -> str:
    """An HS256 token made here, independently of the server."""

    def enc(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = enc(b'{"alg":"HS256"}') + "." + enc(json.dumps(payload, separators=(",", ":")).encode())
    return head + "." + enc(hmac.new(secret.encode(), head.encode(), hashlib.sha256).digest())


def verified(env, email: str = "ada@example.com") -> bool:
    return bool(env.db.rows('SELECT "emailVerified" FROM "user" WHERE "email" = ?', email)[0][0])


async def test_sign_up_mails_a_link_that_verifies(env, browser_for):
    mailbox = Mailbox()
    auth = env.make(email_and_password=required(), email_verification=verifying(mailbox))
    b = browser_for(auth)
    r = await b.sign_up(callbackURL="/welcome")
    assert r.status_code == 200 and r.json()["token"] is None
    mail = mailbox.last("verify")
    assert mail["user"]["email"] == "ada@example.com" and mail["user"]["emailVerified"] is False
    assert mail["url"] == f"{PREFIX}/verify-email?token={mail['token']}&callbackURL=%2Fwelcome"
    header, body = claims(mail["token"])
    assert header == {"alg": "HS256"}
    assert list(body) == ["email", "userId", "iat", "exp"] and body["exp"] - body["iat"] == 3600
    assert (body["email"], body["userId"]) == ("ada@example.com", mail["user"]["id"])
    assert error(await b.sign_in()) == (403, "EMAIL_NOT_VERIFIED")

    r = await b.get(mailbox.link("verify").replace("callbackURL=%2Fwelcome", "callbackURL="))
    assert (r.status_code, r.json()) == (200, {"status": True, "user": None})
    assert "set-cookie" not in r.headers and verified(env)
    assert (await b.sign_in()).status_code == 200
    # Not single use: the link works again, and changes nothing.
    r = await b.get(mailbox.link("verify"))
    assert (r.status_code, r.headers["location"]) == (302, "/welcome")


async def test_no_mail_unless_asked(env, browser_for):
    mailbox = Mailbox()
    auth = env.make(email_verification=verifying(mailbox))
    assert (await browser_for(auth).sign_up()).status_code == 200
    assert mailbox.sent == []
    auth = env.make(email_verification=verifying(mailbox, send_on_sign_up=True))
    assert (await browser_for(auth).sign_up(email="grace@example.com")).status_code == 200
    assert [m["user"]["email"] for m in mailbox.of("verify")] == ["grace@example.com"]


async def test_sign_in_can_send_a_fresh_link(env, browser_for):
    mailbox = Mailbox()
    auth = env.make(
        email_and_password=required(), email_verification=verifying(mailbox, send_on_sign_in=True)
    )
    b = browser_for(auth)
    await b.sign_up()
    assert len(mailbox.of("verify")) == 1
    assert error(await b.sign_in()) == (403, "EMAIL_NOT_VERIFIED")
    assert len(mailbox.of("verify")) == 2


async def test_verify_email_errors(env, browser_for):
    mailbox = Mailbox()
    auth = env.make(email_and_password=required(), email_verification=verifying(mailbox))
    b = browser_for(auth)
    await b.sign_up()
    token = mailbox.last("verify")["token"]
    bad = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert error(await b.get("/verify-email", params={"token": bad})) == (401, "INVALID_TOKEN")
    assert error(
        await b.get("/verify-email", params={"token": jwt({"email": "ada@example.com"}, "other")})
    ) == (
        401,
        "INVALID_TOKEN",
    )
    r = await b.get("/verify-email", params={"token": bad, "callbackURL": "/done?x=1"})
    assert (r.status_code, r.headers["location"], r.content) == (302, "/done?x=1&error=INVALID_TOKEN", b"")
    r = await b.get("/verify-email", params={"token": token, "callbackURL": "https://evil.example/"})
    assert error(r) == (403, "INVALID_CALLBACK_URL")
    r = await b.get("/verify-email", params={"token": jwt({"email": "nobody@example.com"})})
    assert error(r) == (401, "USER_NOT_FOUND")
    r = await b.get("/verify-email", params={"token": jwt({"email": "ada@example.com", "userId": "someone"})})
    assert error(r) == (401, "INVALID_TOKEN")
    r = await b.get("/verify-email", params={"token": jwt({"no": "email"})})
    assert (r.status_code, r.content) == (500, b"")
    r = await b.get("/verify-email")
    assert error(r) == (400, "VALIDATION_ERROR") and "[query.token]" in r.json()["message"]
    advance_clock(auth, 3600)
    assert error(await b.get("/verify-email", params={"token": token})) == (401, "TOKEN_EXPIRED")
    assert not verified(env)


async def test_a_link_signed_elsewhere_with_the_same_secret_works(env, browser_for):
    # Better Auth and this server read each other's links when they share the secret.
    mailbox = Mailbox()
    auth = env.make(email_and_password=required(), email_verification=verifying(mailbox))
    b = browser_for(auth)
    await b.sign_up()
    r = await b.get("/verify-email", params={"token": jwt({"email": "ADA@example.com"})})
    assert r.status_code == 200 and verified(env)


async def test_hooks_and_auto_sign_in(env, browser_for):
    mailbox, seen = Mailbox(), []

    async def before(user, ctx):
        seen.append(("before", user["emailVerified"]))

    def after(user, ctx):
        seen.append(("after", user["emailVerified"]))

    options = verifying(
        mailbox,
        auto_sign_in_after_verification=True,
        before_email_verification=before,
        after_email_verification=after,
    )
    auth = env.make(email_and_password=required(), email_verification=options)
    await browser_for(auth).sign_up()
    fresh = browser_for(auth)
    r = await fresh.get(mailbox.link("verify").replace("callbackURL=%2F", "callbackURL=%2Fhome"))
    assert (r.status_code, r.headers["location"]) == (302, "/home")
    assert TOKEN in set_cookies(r)
    assert (await fresh.session())["user"]["email"] == "ada@example.com"
    assert seen == [("before", False), ("after", True)]


async def test_a_guest_opening_another_users_link_is_converted(env, browser_for):
    cart_table(env)
    mailbox, on_link = Mailbox(), Recorder()
    options = verifying(mailbox, auto_sign_in_after_verification=True)
    auth = env.make(
        email_and_password=required(), email_verification=options, plugins=[anonymous(on_link=on_link)]
    )
    user_id = (await browser_for(auth).sign_up()).json()["user"]["id"]
    g = browser_for(auth)
    guest_id = (await guest(g))["user"]["id"]
    env.db.execute('INSERT INTO "cart" VALUES (?, ?, ?)', "c1", guest_id, "book")
    r = await g.get(mailbox.link("verify"))
    assert r.status_code == 302
    assert on_link.calls == [(guest_id, user_id)]
    env.db.assert_gone(guest_id)
    assert env.db.rows('SELECT "user_id" FROM "cart"') == [(user_id,)]
    assert (await g.session())["user"]["id"] == user_id


async def test_a_guest_verifying_its_own_address_stays_a_guest(env, browser_for):
    mailbox, on_link = Mailbox(), Recorder()
    options = verifying(mailbox, auto_sign_in_after_verification=True)
    auth = env.make(email_verification=options, plugins=[anonymous(on_link=on_link)])
    b = browser_for(auth)
    g = (await guest(b))["user"]
    r = await b.post("/send-verification-email", {"email": g["email"]})
    assert r.status_code == 200 and mailbox.last("verify")["user"]["id"] == g["id"]
    r = await b.get(mailbox.link("verify"))
    assert r.status_code == 302 and on_link.calls == []
    me = (await b.session())["user"]
    assert (me["id"], me["isAnonymous"], me["emailVerified"]) == (g["id"], True, True)


async def test_send_verification_email(env, browser_for):
    mailbox = Mailbox()
    auth = env.make(email_verification=verifying(mailbox))
    b = browser_for(auth)
    await b.sign_up()
    assert error(await b.post("/send-verification-email", {"email": "other@example.com"})) == (
        400,
        "EMAIL_MISMATCH",
    )
    r = await b.post("/send-verification-email", {"email": "ADA@example.com", "callbackURL": "/v"})
    assert (r.status_code, r.json()) == (200, {"status": True})
    assert parse_qs(urlsplit(mailbox.last("verify")["url"]).query)["callbackURL"] == ["/v"]
    await b.get(mailbox.link("verify"))
    assert error(await b.post("/send-verification-email", {"email": "ada@example.com"})) == (
        400,
        "EMAIL_ALREADY_VERIFIED",
    )
    # Signed out: the same answer for an unknown, a verified and an unverified address.
    await browser_for(auth).sign_up(email="grace@example.com")
    before = len(mailbox.sent)
    out = browser_for(auth)
    for email in ("nobody@example.com", "ada@example.com", "grace@example.com"):
        r = await out.post("/send-verification-email", {"email": email})
        assert (r.status_code, r.json()) == (200, {"status": True})
    assert [m["user"]["email"] for _, m in mailbox.sent[before:]] == ["grace@example.com"]
    r = await out.post(
        "/send-verification-email", {"email": "x@example.com", "callbackURL": "https://evil.example"}
    )
    assert error(r) == (403, "INVALID_CALLBACK_URL")


async def test_without_a_sender(env, browser_for):
    b = browser_for(env.make())
    await b.sign_up()
    r = await b.post("/send-verification-email", {"email": "ada@example.com"})
    assert r.json() == {
        "code": "VERIFICATION_EMAIL_NOT_ENABLED",
        "message": "Verification email isn't enabled",
    }


async def test_a_failing_sender_on_send_verification_email_is_the_answer(env, browser_for):
    from kernia import APIError

    mailbox = Mailbox()
    failing = EmailVerificationOptions(
        send_verification_email=mailbox.sender(
            "verify", fail=APIError(503, "MAIL_DOWN", "The mail server is down")
        )
    )
    b = browser_for(env.make(email_verification=failing))
    await b.sign_up()
    assert error(await b.post("/send-verification-email", {"email": "ada@example.com"})) == (503, "MAIL_DOWN")


def test_kernias_advanced_sender_is_honoured(tmp_path):
    import asyncio

    import httpx

    got = []

    def sender(email, token, callback_url):
        got.append((email, token, callback_url))

    options = KerniaOptions(
        database=f"sqlite:///{tmp_path / 'k.db'}",
        secret=SECRET,
        email_and_password=required(),
        advanced={"send_verification_email": sender},
    )

    async def run():
        with init(options) as auth:
            transport = httpx.ASGITransport(app=auth.router.mount())
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost:3000") as c:
                body = {
                    "name": "A",
                    "email": "ada@example.com",
                    "password": "correct-horse",
                    "callbackURL": "/x",
                }
                assert (await c.post("/api/auth/sign-up/email", json=body)).status_code == 200

    asyncio.run(run())
    [(email, token, callback)] = got
    assert (email, callback) == ("ada@example.com", "/x") and claims(token)[1]["email"] == email


def test_bad_options_are_refused(tmp_path):
    from kernia import ConfigurationError

    base = {"database": f"sqlite:///{tmp_path / 'k.db'}", "secret": SECRET}
    with pytest.raises(TypeError, match="send_verification_email must be a function"):
        init(KerniaOptions(**base, email_verification=EmailVerificationOptions(send_verification_email="x")))
    with pytest.raises(ConfigurationError, match=r"email_verification\.expires_in"):
        init(KerniaOptions(**base, email_verification=EmailVerificationOptions(expires_in=0)))
    with pytest.raises(
        TypeError, match=r"KerniaOptions\.email_verification must be EmailVerificationOptions"
    ):
        init(KerniaOptions(**base, email_verification={"expires_in": 5}))
    both = KerniaOptions(
        **base,
        email_verification=EmailVerificationOptions(send_verification_email=lambda d, c: None),
        advanced={"send_verification_email": lambda **kw: None},
    )
    with pytest.raises(ConfigurationError, match="given twice"):
        init(both)


async def test_before_email_verification_can_refuse(env, browser_for):
    from kernia import APIError

    mailbox = Mailbox()

    def before(user, ctx):
        raise APIError(403, "DOMAIN_BLOCKED", "This domain is not accepted")

    options = verifying(mailbox, before_email_verification=before)
    b = browser_for(env.make(email_and_password=required(), email_verification=options))
    await b.sign_up()
    assert error(await b.get(mailbox.link("verify"))) == (403, "DOMAIN_BLOCKED")
    assert not verified(env)


async def test_an_older_change_token_without_a_request_type(env, browser_for):
    # §7.3 (d): the email changes, unverified, and the new address gets a plain link.
    mailbox = Mailbox()
    b = browser_for(env.make(email_verification=verifying(mailbox)))
    user_id = (await b.sign_up()).json()["user"]["id"]
    env.db.execute('UPDATE "user" SET "emailVerified" = ?', True)
    token = jwt({"email": "ada@example.com", "updateTo": "New@example.com", "userId": user_id})
    r = await b.get("/verify-email", params={"token": token})
    assert r.status_code == 200 and r.json()["user"]["email"] == "new@example.com"
    assert not verified(env, "new@example.com")
    assert mailbox.last("verify")["user"]["email"] == "new@example.com"
