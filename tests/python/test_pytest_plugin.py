"""The pytest plugin apps get with the package (``kernia.testing.pytest_plugin``), used as an
app's tests would: a guest-first shop's cart survives conversion by every path."""

from __future__ import annotations

import pytest

from kernia import EmailPasswordOptions, EmailVerificationOptions
from kernia.plugins import anonymous, email_otp, magic_link, passkey


@pytest.fixture(params=["asgi", "native"])
def native(request) -> bool:
    return request.param == "native"


def shop(kernia_auth, mail_outbox, moved: list):
    async def on_link(guest, user, ctx):
        moved.append((guest["id"], user["id"]))

    return kernia_auth(
        email_and_password=EmailPasswordOptions(
            enabled=True, send_reset_password=mail_outbox.send_reset_password
        ),
        email_verification=EmailVerificationOptions(
            send_verification_email=mail_outbox.send_verification_email
        ),
        plugins=[
            anonymous(on_link=on_link),
            magic_link(mail_outbox.send_magic_link),
            email_otp(mail_outbox.send_otp),
            passkey(),
        ],
    )


async def test_a_guest_converts_by_sign_up(kernia_auth, mail_outbox, guest_client, assert_converted, native):
    moved: list = []
    auth = shop(kernia_auth, mail_outbox, moved)
    client = await guest_client(auth, native=native)
    signed = await client.sign_up("ada@example.com")
    assert signed.status_code == 200
    await assert_converted(auth, client.guest["id"], signed.json()["user"]["id"])
    assert moved == [(client.guest["id"], signed.json()["user"]["id"])]


async def test_a_guest_converts_by_magic_link_and_by_code(
    kernia_auth, mail_outbox, guest_client, assert_converted, native
):
    moved: list = []
    auth = shop(kernia_auth, mail_outbox, moved)
    client = await guest_client(auth, native=native)
    await client.post("/sign-in/magic-link", {"email": "ada@example.com"})
    mail = mail_outbox.last("ada@example.com", "magic-link")
    assert mail.query("token") == mail.token
    opened = await client.get("/magic-link/verify", params={"token": mail.token})
    assert opened.status_code == 200
    user = (await client.session())["user"]
    await assert_converted(auth, client.guest["id"], user["id"])

    other = await guest_client(auth, native=native)
    await other.post("/email-otp/send-verification-otp", {"email": "grace@example.com", "type": "sign-in"})
    code = mail_outbox.last("grace@example.com", "otp").otp
    signed = await other.post("/sign-in/email-otp", {"email": "grace@example.com", "otp": code})
    await assert_converted(auth, other.guest["id"], signed.json()["user"]["id"])


async def test_passkeys_and_the_clock(
    kernia_auth, mail_outbox, signed_in_client, auth_client, passkey_authenticator, auth_clock, native
):
    auth = shop(kernia_auth, mail_outbox, [])
    client = await signed_in_client(auth, email="ada@example.com", native=native)
    await passkey_authenticator.register(client)
    fresh = auth_client(auth, native=native)
    signed = await passkey_authenticator.sign_in(fresh)
    assert signed.status_code == 200 and (await fresh.session())["user"]["id"] == client.user["id"]
    auth_clock.advance(8 * 86_400)  # a week and a day: the sessions are over
    assert await fresh.session() is None
    auth_clock.freeze()
    await client.post("/request-password-reset", {"email": "ada@example.com"})
    assert mail_outbox.last("ada@example.com", "reset-password").url
