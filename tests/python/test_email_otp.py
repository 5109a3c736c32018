"""Email one-time codes (Better Auth's email-OTP plugin): sign-in creating or converting, a
guest converted with ``on_link``, wrong, expired and exhausted codes, single use, email
verification and password reset. On SQLite and PostgreSQL, through ASGI and native."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import cart_table, guest, move_cart_sql

from kernia import ConfigurationError, EmailVerificationOptions, KerniaOptions
from kernia.auth import init
from kernia.plugins import email_otp
from kernia.plugins.anonymous import anonymous
from kernia.testing import advance_clock

from conftest import SECRET


class Codes:
    """What the app's sender got."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, data, ctx) -> None:
        self.sent.append(dict(data))

    def last(self, email: str, kind: str = "sign-in") -> str:
        return next(d["otp"] for d in reversed(self.sent) if d["email"] == email and d["type"] == kind)


async def _code(b, codes: Codes, email: str, kind: str = "sign-in") -> str:
    r = await b.post("/email-otp/send-verification-otp", {"email": email, "type": kind})
    assert r.status_code == 200 and r.json() == {"success": True}, r.text
    return codes.last(email.lower(), kind)


async def test_sign_in_with_a_code_creates_the_user_once_and_spends_the_code(env, browser_for):
    codes = Codes()
    auth = env.make(plugins=[email_otp(codes.send)])
    b = browser_for(auth)
    otp = await _code(b, codes, "Ada@Example.com")
    assert len(otp) == 6 and otp.isdigit()
    # Kept hashed: the code is nowhere in the table.
    [(value,)] = env.db.rows(
        "SELECT value FROM verification WHERE identifier = ?", "sign-in-otp-ada@example.com"
    )
    assert otp not in value and value.endswith(":0")
    r = await b.post("/sign-in/email-otp", {"email": "ada@example.com", "otp": otp, "name": "Ada"})
    assert r.status_code == 200, r.text
    user = r.json()["user"]
    assert set(r.json()) == {"token", "user"} and user["emailVerified"] is True and user["name"] == "Ada"
    assert (await b.session())["user"]["id"] == user["id"]
    again = await browser_for(auth).post("/sign-in/email-otp", {"email": "ada@example.com", "otp": otp})
    assert again.status_code == 400 and again.json()["code"] == "INVALID_OTP"
    # A second code signs the same user in.
    other = browser_for(auth)
    second = await other.post(
        "/sign-in/email-otp",
        {"email": "ada@example.com", "otp": await _code(other, codes, "ada@example.com")},
    )
    assert second.json()["user"]["id"] == user["id"]
    assert env.db.rows('SELECT count(*) FROM "user"') == [(1,)]


async def test_wrong_codes_count_and_end_the_code(env, browser_for):
    codes = Codes()
    auth = env.make(plugins=[email_otp(codes.send, allowed_attempts=2)])
    b = browser_for(auth)
    otp = await _code(b, codes, "ada@example.com")
    wrong = "000000" if otp != "000000" else "111111"
    for _ in range(2):
        r = await b.post("/sign-in/email-otp", {"email": "ada@example.com", "otp": wrong})
        assert (r.status_code, r.json()["code"]) == (400, "INVALID_OTP")
    r = await b.post("/sign-in/email-otp", {"email": "ada@example.com", "otp": otp})
    assert (r.status_code, r.json()) == (403, {"code": "TOO_MANY_ATTEMPTS", "message": "Too many attempts"})
    r = await b.post("/sign-in/email-otp", {"email": "ada@example.com", "otp": otp})
    assert r.json()["code"] == "INVALID_OTP"  # gone
    assert env.db.rows('SELECT count(*) FROM "user"') == [(0,)]


async def test_an_expired_code_is_refused_and_deleted(env, browser_for):
    codes = Codes()
    auth = env.make(plugins=[email_otp(codes.send, expires_in=60)])
    b = browser_for(auth)
    otp = await _code(b, codes, "ada@example.com")
    advance_clock(auth, 61)
    r = await b.post("/sign-in/email-otp", {"email": "ada@example.com", "otp": otp})
    assert (r.status_code, r.json()["code"]) == (400, "OTP_EXPIRED")
    assert env.db.rows("SELECT count(*) FROM verification") == [(0,)]


async def test_a_guest_signing_in_with_a_code_is_converted_with_its_data(env, browser_for):
    codes = Codes()
    cart_table(env)
    linked: list[tuple[str, str]] = []

    async def on_link(anonymous_user, new_user, ctx):
        linked.append((anonymous_user["id"], new_user["id"]))
        await ctx.db.execute(move_cart_sql(ctx), [new_user["id"], anonymous_user["id"]])

    auth = env.make(plugins=[anonymous(on_link=on_link), email_otp(codes.send)])
    b = browser_for(auth)
    guest_id = (await guest(b))["user"]["id"]
    env.db.execute('INSERT INTO "cart" ("id", "user_id", "item") VALUES (?, ?, ?)', "c1", guest_id, "tea")
    otp = await _code(b, codes, "ada@example.com")
    r = await b.post("/sign-in/email-otp", {"email": "ada@example.com", "otp": otp})
    assert r.status_code == 200, r.text
    new_id = r.json()["user"]["id"]
    assert linked == [(guest_id, new_id)]
    env.db.assert_gone(guest_id)
    assert env.db.rows('SELECT "user_id" FROM "cart"') == [(new_id,)]
    stats = await auth.api.guest_stats()
    assert stats["converted_by_method"] == {"email-otp": 1}


async def test_sign_up_by_code_can_be_turned_off_and_unknown_addresses_get_no_code(env, browser_for):
    codes = Codes()
    auth = env.make(plugins=[email_otp(codes.send, disable_sign_up=True)])
    b = browser_for(auth)
    r = await b.post("/email-otp/send-verification-otp", {"email": "nobody@example.com", "type": "sign-in"})
    assert r.json() == {"success": True} and codes.sent == []
    for kind in ("email-verification", "forget-password"):
        assert (
            await b.post("/email-otp/send-verification-otp", {"email": "x@example.com", "type": kind})
        ).json() == {"success": True}
    assert codes.sent == []
    bad = await b.post("/email-otp/send-verification-otp", {"email": "x@example.com", "type": "nope"})
    assert bad.status_code == 400 and bad.json()["code"] == "VALIDATION_ERROR"
    change = await b.post(
        "/email-otp/send-verification-otp", {"email": "x@example.com", "type": "change-email"}
    )
    assert change.status_code == 400 and change.json()["message"] == "Invalid OTP type"
    invalid = await b.post("/email-otp/send-verification-otp", {"email": "not-an-email", "type": "sign-in"})
    assert invalid.json()["code"] == "INVALID_EMAIL"


async def test_verify_email_and_check_a_code(env, browser_for):
    codes = Codes()
    auth = env.make(
        plugins=[email_otp(codes.send)],
        email_verification=EmailVerificationOptions(auto_sign_in_after_verification=True),
    )
    b = browser_for(auth)
    await b.sign_up()
    b.cookies.clear()
    otp = await _code(b, codes, "ada@example.com", "email-verification")
    checked = await b.post(
        "/email-otp/check-verification-otp",
        {"email": "ada@example.com", "type": "email-verification", "otp": otp},
    )
    assert checked.json() == {"success": True}
    r = await b.post("/email-otp/verify-email", {"email": "ada@example.com", "otp": otp})
    assert r.status_code == 200, r.text
    assert r.json()["status"] is True and r.json()["user"]["emailVerified"] is True and r.json()["token"]
    assert (await b.session())["user"]["emailVerified"] is True
    assert (
        await b.post("/email-otp/verify-email", {"email": "ada@example.com", "otp": otp})
    ).status_code == 400


async def test_verify_email_without_auto_sign_in_answers_no_token(env, browser_for):
    codes = Codes()
    b = browser_for(env.make(plugins=[email_otp(codes.send)]))
    await b.sign_up()
    otp = await _code(b, codes, "ada@example.com", "email-verification")
    r = await b.post("/email-otp/verify-email", {"email": "ada@example.com", "otp": otp})
    assert r.status_code == 200, r.text
    assert r.json()["token"] is None and r.json()["user"]["emailVerified"] is True
    unknown = await b.post(
        "/email-otp/check-verification-otp",
        {"email": "nobody@example.com", "type": "sign-in", "otp": "123456"},
    )
    assert unknown.status_code == 400 and unknown.json()["code"] == "INVALID_OTP"


async def test_reset_a_password_with_a_code(env, browser_for):
    codes = Codes()
    auth = env.make(plugins=[email_otp(codes.send)])
    b = browser_for(auth)
    await b.sign_up()
    b.cookies.clear()
    for path in ("/email-otp/request-password-reset", "/forget-password/email-otp"):
        assert (await b.post(path, {"email": "ada@example.com"})).json() == {"success": True}
    otp = codes.last("ada@example.com", "forget-password")
    short = await b.post(
        "/email-otp/reset-password", {"email": "ada@example.com", "otp": otp, "password": "x"}
    )
    assert short.json()["code"] == "PASSWORD_TOO_SHORT"
    r = await b.post(
        "/email-otp/reset-password", {"email": "ada@example.com", "otp": otp, "password": "new-horse-12"}
    )
    assert r.json() == {"success": True}, r.text
    assert (await b.sign_in(password="new-horse-12")).status_code == 200
    assert (await b.sign_in()).status_code == 401
    spent = await b.post(
        "/email-otp/reset-password", {"email": "ada@example.com", "otp": otp, "password": "again-123"}
    )
    assert spent.json()["code"] == "INVALID_OTP"


async def test_the_plain_store_and_kernias_configuration(tmp_path, open_auth):
    got: list[tuple[str, str, str]] = []

    async def send_otp(email, otp, purpose):
        got.append((email, otp, purpose))

    auth = open_auth(
        KerniaOptions(
            database=f"sqlite:///{tmp_path / 'k.db'}",
            secret=SECRET,
            plugins=[email_otp()],
            advanced={"email-otp": {"send_otp": send_otp, "otp_length": 8, "store_otp": "plain"}},
        )
    )
    from conftest import Browser

    b = Browser(auth.router.mount())
    await b.post("/email-otp/send-verification-otp", {"email": "ada@example.com", "type": "sign-in"})
    [(email, otp, purpose)] = got
    assert (email, purpose, len(otp)) == ("ada@example.com", "sign-in", 8)
    assert (await b.post("/sign-in/email-otp", {"email": email, "otp": otp})).status_code == 200
    await b.aclose()


def test_email_otp_options_are_checked(tmp_path):
    def send_otp(email, otp, purpose):
        pass

    assert email_otp(send_otp=send_otp).callables()["send_verification_otp"] is not send_otp  # adapted
    with pytest.raises(TypeError, match="not both"):
        email_otp(send_otp, send_otp=send_otp)
    with pytest.raises(ConfigurationError, match="otp_length"):
        email_otp(lambda d, c: None, otp_length=2)
    with pytest.raises(ValueError, match="store_otp"):
        email_otp(lambda d, c: None, store_otp="encrypted")
    with pytest.raises(ConfigurationError, match="needs send_verification_otp"):
        init(KerniaOptions(database="sqlite::memory:", secret=SECRET, plugins=[email_otp()]))
    with pytest.raises(ConfigurationError, match=r"unknown option\(s\) resend"):
        init(
            KerniaOptions(
                database="sqlite::memory:",
                secret=SECRET,
                plugins=[email_otp()],
                advanced={"email-otp": {"send_otp": print, "resend": True}},
            )
        )


async def test_each_code_route_allows_three_a_minute_per_ip(env, browser_for):
    from kernia import RateLimitOptions

    codes = Codes()
    auth = env.make(plugins=[email_otp(codes.send)], rate_limit=RateLimitOptions(enabled=True))
    b = browser_for(auth)
    body = {"email": "ada@example.com", "type": "sign-in"}
    statuses = [(await b.post("/email-otp/send-verification-otp", body)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    # Each route has its own bucket.
    assert (await b.post("/sign-in/email-otp", {"email": "ada@example.com", "otp": "1"})).status_code == 400
