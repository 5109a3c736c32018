"""The passkey plugin (spec §10) with a software authenticator, and guests converting or
upgrading through it, on SQLite and PostgreSQL, through the ASGI app and the native server."""

from __future__ import annotations

import base64
import json

import pytest
from helpers import Recorder, cart_table, guest

from kernia import SessionOptions
from kernia.plugins.anonymous import anonymous
from kernia.plugins.passkey import passkey
from kernia.testing.authenticator import EDDSA, ES256, RS256, Authenticator, Credential, b64url

from conftest import set_cookies

CHALLENGE_COOKIE = "better-auth.better-auth-passkey"


async def register(b, device: Authenticator, name: str | None = "laptop", **create_kw):
    r = await b.get("/passkey/generate-register-options")
    assert r.status_code == 200, r.text
    body = {"response": device.create(r.json(), **create_kw)}
    if name is not None:
        body["name"] = name
    return await b.post("/passkey/verify-registration", body)


async def sign_in(b, device: Authenticator, **get_kw):
    r = await b.get("/passkey/generate-authenticate-options")
    assert r.status_code == 200, r.text
    return await b.post("/passkey/verify-authentication", {"response": device.get(r.json(), **get_kw)})


async def user_with_passkey(auth, browser_for, device: Authenticator, email="ada@example.com"):
    b = browser_for(auth)
    assert (await b.sign_up(email)).status_code == 200
    r = await register(b, device)
    assert r.status_code == 200, r.text
    return b, r.json()


def error(r) -> tuple[int, str | None]:
    return r.status_code, r.json().get("code")


# --- options --------------------------------------------------------------------------------------


async def test_rp_name_rp_id_and_authenticator_selection_take_effect(env, browser_for):
    plugin = passkey(
        rp_id="example.com",
        rp_name="Shop",
        authenticator_selection={"userVerification": "required", "residentKey": "required"},
    )
    b = browser_for(env.make(plugins=[plugin]))
    await b.sign_up()
    o = (await b.get("/passkey/generate-register-options")).json()
    assert o["rp"] == {"name": "Shop", "id": "example.com"}
    assert o["authenticatorSelection"]["userVerification"] == "required"
    assert o["authenticatorSelection"]["residentKey"] == "required"


async def test_register_options_have_simplewebauthns_shape(env, browser_for):
    b = browser_for(env.make(plugins=[passkey()]))
    await b.sign_up()
    r = await b.get("/passkey/generate-register-options", params={"authenticatorAttachment": "platform"})
    assert r.status_code == 200, r.text
    o = r.json()
    assert list(o) == [
        "challenge", "rp", "user", "pubKeyCredParams", "timeout", "attestation",
        "excludeCredentials", "authenticatorSelection", "extensions", "hints",
    ]  # fmt: skip
    assert len(base64.urlsafe_b64decode(o["challenge"] + "=")) == 32
    assert o["rp"] == {"name": "Better Auth", "id": "localhost"}
    assert o["user"]["name"] == o["user"]["displayName"] == "ada@example.com"
    assert len(base64.urlsafe_b64decode(o["user"]["id"] + "=" * (-len(o["user"]["id"]) % 4))) == 32
    assert o["pubKeyCredParams"] == [{"alg": a, "type": "public-key"} for a in (-8, -7, -257)]
    assert (o["timeout"], o["attestation"], o["excludeCredentials"], o["hints"]) == (60000, "none", [], [])
    assert o["authenticatorSelection"] == {
        "residentKey": "preferred",
        "userVerification": "preferred",
        "authenticatorAttachment": "platform",
        "requireResidentKey": False,
    }
    assert o["extensions"] == {"credProps": True}
    cookie = set_cookies(r)[CHALLENGE_COOKIE]
    assert "Max-Age=300" in cookie and "HttpOnly" in cookie
    [(value,)] = env.db.rows('SELECT "value" FROM "verification"')
    stored = json.loads(value)
    assert stored["type"] == "registration" and stored["expectedChallenge"] == o["challenge"]
    bad = await b.get("/passkey/generate-register-options", params={"authenticatorAttachment": "usb"})
    assert error(bad) == (400, "VALIDATION_ERROR")


async def test_authenticate_options_list_a_signed_in_users_passkeys_only(env, browser_for):
    auth = env.make(plugins=[passkey(rp_id="localhost")])
    device = Authenticator()
    b, key = await user_with_passkey(auth, browser_for, device)
    mine = (await b.get("/passkey/generate-authenticate-options")).json()
    assert list(mine) == ["rpId", "challenge", "allowCredentials", "timeout", "userVerification"]
    assert mine["allowCredentials"] == [
        {"id": key["credentialID"], "type": "public-key", "transports": ["internal", "hybrid"]}
    ]
    anyone = (await browser_for(auth).get("/passkey/generate-authenticate-options")).json()
    assert list(anyone) == ["rpId", "challenge", "timeout", "userVerification"]
    again = (await b.get("/passkey/generate-register-options")).json()
    assert again["excludeCredentials"] == mine["allowCredentials"]


# --- register, sign in, manage ----------------------------------------------------------------------


# What Chromium's authenticator does: take the first algorithm offered (EdDSA).
ALGORITHMS = pytest.mark.parametrize(
    "algorithm", [ES256, EDDSA, RS256, None], ids=["es256", "eddsa", "rs256", "browsers-pick"]
)


@ALGORITHMS
async def test_register_sign_out_and_sign_in_with_the_passkey(env, browser_for, algorithm):
    auth = env.make(plugins=[passkey()])
    device = Authenticator(algorithm=algorithm)
    b, key = await user_with_passkey(auth, browser_for, device)
    user_id = (await b.session())["user"]["id"]
    assert list(key) == [
        "id", "name", "publicKey", "userId", "credentialID", "counter",
        "deviceType", "backedUp", "transports", "createdAt", "aaguid",
    ]  # fmt: skip
    assert key["userId"] == user_id and key["name"] == "laptop" and key["counter"] == 1
    assert key["credentialID"] == b64url(device.credentials[0].id)
    assert base64.b64decode(key["publicKey"]) == device.credentials[0].cose_public_key()
    # Standard base64 with its padding, as Better Auth stores it (not base64url).
    padded = base64.b64encode(base64.b64decode(key["publicKey"], validate=True)).decode()
    assert padded == key["publicKey"]
    assert (key["deviceType"], key["backedUp"], key["transports"]) == (
        "singleDevice",
        False,
        "internal,hybrid",
    )
    assert key["aaguid"] == "00010203-0405-0607-0809-0a0b0c0d0e0f"
    assert env.db.count("verification") == 0  # the challenge is used up

    await b.post("/sign-out", {})
    fresh = browser_for(auth)
    r = await sign_in(fresh, device)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"session", "user"}
    assert body["user"]["id"] == user_id and body["session"]["userId"] == user_id
    assert "token" in body["session"]
    assert (await fresh.session())["user"]["id"] == user_id
    assert env.db.rows('SELECT "counter" FROM "passkey"') == [(2,)]


async def test_verify_registration_can_create_a_session(env, browser_for):
    auth = env.make(plugins=[passkey()])
    b = browser_for(auth)
    await b.sign_up()
    old_token = b.cookies["better-auth.session_token"]
    options = (await b.get("/passkey/generate-register-options")).json()
    response = Authenticator().create(options)
    r = await b.post("/passkey/verify-registration", {"response": response, "createSession": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] is None and body["userId"] == body["user"]["id"] == body["session"]["userId"]
    assert "better-auth.session_token" in set_cookies(r)
    assert b.cookies["better-auth.session_token"] != old_token
    assert (await b.session())["session"]["token"] == body["session"]["token"]
    assert env.db.count("session") == 2


async def test_list_rename_and_delete(env, browser_for):
    auth = env.make(plugins=[passkey()])
    device = Authenticator()
    b, key = await user_with_passkey(auth, browser_for, device)
    second = await register(b, device, name=" phone ")
    assert second.json()["name"] == "phone"
    listed = (await b.get("/passkey/list-user-passkeys")).json()
    assert [p["name"] for p in listed] == ["laptop", "phone"]
    assert listed[0] == key
    r = await b.post("/passkey/update-passkey", {"id": key["id"], "name": "  work laptop "})
    assert r.status_code == 200 and r.json() == {"passkey": {**key, "name": "work laptop"}}
    assert error(await b.post("/passkey/update-passkey", {"id": key["id"], "name": "  "})) == (
        400,
        "VALIDATION_ERROR",
    )
    r = await b.post("/passkey/delete-passkey", {"id": key["id"]})
    assert r.status_code == 200 and r.json() == {"status": True}
    assert [p["id"] for p in (await b.get("/passkey/list-user-passkeys")).json()] == [second.json()["id"]]
    assert error(await b.post("/passkey/delete-passkey", {"id": key["id"]})) == (404, "PASSKEY_NOT_FOUND")
    # A deleted passkey signs nobody in.
    r = await sign_in(browser_for(auth), device, credential=device.credentials[0])
    assert error(r) == (401, "PASSKEY_NOT_FOUND")


async def test_another_users_passkey_cannot_be_renamed_or_deleted(env, browser_for):
    auth = env.make(plugins=[passkey()])
    _, key = await user_with_passkey(auth, browser_for, Authenticator())
    mallory = browser_for(auth)
    await mallory.sign_up("mallory@example.com")
    r = await mallory.post("/passkey/update-passkey", {"id": key["id"], "name": "mine"})
    assert error(r) == (401, "YOU_ARE_NOT_ALLOWED_TO_REGISTER_THIS_PASSKEY")
    assert error(await mallory.post("/passkey/delete-passkey", {"id": key["id"]})) == (401, "UNAUTHORIZED")
    assert (await mallory.get("/passkey/list-user-passkeys")).json() == []
    assert env.db.rows('SELECT "name" FROM "passkey"') == [("laptop",)]


async def test_signed_out_requests_are_refused(env, browser_for):
    b = browser_for(env.make(plugins=[passkey()]))
    for method, path, body in (
        ("GET", "/passkey/generate-register-options", None),
        ("POST", "/passkey/verify-registration", {"response": {}}),
        ("GET", "/passkey/list-user-passkeys", None),
        ("POST", "/passkey/delete-passkey", {"id": "x"}),
        ("POST", "/passkey/update-passkey", {"id": "x", "name": "y"}),
    ):
        r = await b.request(method, path, json=body)
        assert error(r) == (401, "UNAUTHORIZED"), path


async def test_registration_needs_a_fresh_session_except_for_guests(env, browser_for):
    auth = env.make(plugins=[anonymous(), passkey()], session=SessionOptions(fresh_age=1))
    b = browser_for(auth)
    await b.sign_up()
    env.db.execute('UPDATE "session" SET "createdAt" = ?', "2020-01-01T00:00:00.000Z")
    r = await b.get("/passkey/generate-register-options")
    assert error(r) == (403, "SESSION_NOT_FRESH")
    g = browser_for(auth)
    await guest(g)
    env.db.execute('UPDATE "session" SET "createdAt" = ?', "2020-01-01T00:00:00.000Z")
    assert (await register(g, Authenticator())).status_code == 200


async def test_a_list_of_origins(env, browser_for):
    # A site served from two origins (the app and its www twin) shares one RP id.
    origins = ["http://localhost:3000", "http://app.localhost:3000"]
    auth = env.make(plugins=[passkey(rp_id="localhost", origin=origins)], trusted_origins=origins[1:])
    device = Authenticator(origin=origins[0])
    await user_with_passkey(auth, browser_for, device)
    for origin in origins:
        r = await sign_in(browser_for(auth, origin=origin), device, origin=origin)
        assert r.status_code == 200, (origin, r.text)
    other = "http://evil.localhost:3000"  # in clientDataJSON only: the request itself is trusted
    r = await sign_in(browser_for(auth), device, origin=other)
    assert error(r) == (401, "AUTHENTICATION_FAILED")
    # Registering from the second origin works too; from another it does not.
    second = Authenticator(origin=origins[1])
    b = browser_for(auth, origin=origins[1])
    await b.sign_up(email="grace@example.com")
    assert (await register(b, second)).status_code == 200
    assert error(await register(b, second, origin=other)) == (400, "FAILED_TO_VERIFY_REGISTRATION")


# --- failures -------------------------------------------------------------------------------------------


@ALGORITHMS
async def test_registration_failures(env, browser_for, algorithm):
    auth = env.make(plugins=[passkey()])
    b = browser_for(auth)
    await b.sign_up()
    device = Authenticator(algorithm=algorithm)
    assert error(await register(b, device, origin="https://evil.example")) == (
        400,
        "FAILED_TO_VERIFY_REGISTRATION",
    )
    assert error(await register(b, device, rp_id="evil.example")) == (400, "FAILED_TO_VERIFY_REGISTRATION")
    assert env.db.count("passkey") == 0
    assert env.db.count("verification") == 0  # failed attempts use their challenge up too
    # No challenge cookie at all, or a replayed one.
    options = (await b.get("/passkey/generate-register-options")).json()
    response = device.create(options)
    cookie = b.cookies.pop(CHALLENGE_COOKIE)
    r = await b.post("/passkey/verify-registration", {"response": response})
    assert error(r) == (400, "CHALLENGE_NOT_FOUND")
    b.cookies[CHALLENGE_COOKIE] = cookie
    assert (await b.post("/passkey/verify-registration", {"response": response})).status_code == 200
    r = await b.post("/passkey/verify-registration", {"response": response})
    assert error(r) == (400, "CHALLENGE_NOT_FOUND")
    # A cookie-carrying POST without an Origin is refused by the CSRF check (spec §13).
    await b.get("/passkey/generate-register-options")
    r = await b.post("/passkey/verify-registration", {"response": response}, headers={"origin": ""})
    assert error(r) == (403, "MISSING_OR_NULL_ORIGIN")
    assert env.db.count("passkey") == 1


async def test_a_challenge_for_another_user_is_refused(env, browser_for):
    auth = env.make(plugins=[passkey()])
    ada = browser_for(auth)
    await ada.sign_up()
    options = (await ada.get("/passkey/generate-register-options")).json()
    response = Authenticator().create(options)
    mallory = browser_for(auth)
    await mallory.sign_up("mallory@example.com")
    mallory.cookies[CHALLENGE_COOKIE] = ada.cookies[CHALLENGE_COOKIE]
    r = await mallory.post("/passkey/verify-registration", {"response": response})
    assert error(r) == (401, "YOU_ARE_NOT_ALLOWED_TO_REGISTER_THIS_PASSKEY")
    assert env.db.count("passkey") == 0


async def test_an_expired_challenge_is_refused(env, browser_for):
    auth = env.make(plugins=[passkey()])
    device = Authenticator()
    await user_with_passkey(auth, browser_for, device)
    b = browser_for(auth)
    options = (await b.get("/passkey/generate-authenticate-options")).json()
    env.db.execute('UPDATE "verification" SET "expiresAt" = ?', "2020-01-01T00:00:00.000Z")
    r = await b.post("/passkey/verify-authentication", {"response": device.get(options)})
    assert error(r) == (400, "CHALLENGE_NOT_FOUND")
    assert b.cookies.get("better-auth.session_token") is None


@ALGORITHMS
async def test_sign_in_failures(env, browser_for, algorithm):
    auth = env.make(plugins=[passkey()])
    device = Authenticator(algorithm=algorithm)
    await user_with_passkey(auth, browser_for, device)
    b = browser_for(auth)
    assert error(await sign_in(b, device, origin="https://evil.example")) == (401, "AUTHENTICATION_FAILED")
    assert error(await sign_in(b, device, rp_id="evil.example")) == (401, "AUTHENTICATION_FAILED")
    assert error(await sign_in(b, device, tamper=True)) == (401, "AUTHENTICATION_FAILED")
    assert error(await sign_in(b, device, counter=0)) == (401, "AUTHENTICATION_FAILED")  # backwards
    stranger = Authenticator()
    known = device.credentials[0]
    stranger.credentials.append(Credential(b"\x01" * 16, known.key, "localhost", b"x"))
    assert error(await sign_in(b, stranger)) == (401, "PASSKEY_NOT_FOUND")
    device.credentials[0].counter = 10  # past the failed attempts above
    # A challenge is good for one ceremony, even a failed one.
    options = (await b.get("/passkey/generate-authenticate-options")).json()
    response = device.get(options)
    assert (await b.post("/passkey/verify-authentication", {"response": response})).status_code == 200
    r = await b.post("/passkey/verify-authentication", {"response": response})
    assert error(r) == (400, "CHALLENGE_NOT_FOUND")
    # No Origin and no cookies (so no CSRF check): Better Auth's bare message.
    bare = browser_for(auth, origin=None)
    r = await bare.post("/passkey/verify-authentication", {"response": device.get(options)})
    assert r.status_code == 400 and r.json() == {"message": "origin missing"}
    assert env.db.count("session") == 2  # the owner's and the one good sign-in


async def test_authenticators_without_counters_stay_at_zero(env, browser_for):
    auth = env.make(plugins=[passkey()])
    device = Authenticator(counter_step=0, multi_device=True)
    _, key = await user_with_passkey(auth, browser_for, device)
    assert (key["counter"], key["deviceType"], key["backedUp"]) == (0, "multiDevice", True)
    for _ in range(2):
        assert (await sign_in(browser_for(auth), device)).status_code == 200
    assert env.db.rows('SELECT "counter" FROM "passkey"') == [(0,)]


# --- guests -------------------------------------------------------------------------------------------


async def test_a_guest_signing_in_with_a_real_accounts_passkey_is_converted(env, browser_for):
    cart_table(env)
    on_link = Recorder()
    auth = env.make(plugins=[anonymous(on_link=on_link), passkey()])
    device = Authenticator()
    owner, _ = await user_with_passkey(auth, browser_for, device)
    owner_id = (await owner.session())["user"]["id"]
    b = browser_for(auth)
    guest_id = (await guest(b))["user"]["id"]
    env.db.execute('INSERT INTO "cart" VALUES (?, ?, ?)', "c1", guest_id, "book")
    r = await sign_in(b, device)
    assert r.status_code == 200, r.text
    assert on_link.calls == [(guest_id, owner_id)]
    assert (await b.session())["user"]["id"] == owner_id
    env.db.assert_gone(guest_id)
    assert env.db.rows('SELECT "user_id" FROM "cart"') == [(owner_id,)]


async def test_a_failing_on_link_undoes_a_passkey_sign_in(env, browser_for):
    on_link = Recorder(fail=RuntimeError("cart service down"))
    auth = env.make(plugins=[anonymous(on_link=on_link), passkey()])
    device = Authenticator()
    await user_with_passkey(auth, browser_for, device)
    b = browser_for(auth)
    guest_id = (await guest(b))["user"]["id"]
    before = env.db.snapshot()
    counter = env.db.rows('SELECT "counter" FROM "passkey"')
    r = await sign_in(b, device)
    assert r.status_code == 500 and r.json()["code"] == "ON_LINK_FAILED"
    after = env.db.snapshot()
    assert after["user"] == before["user"] and after["session"] == before["session"]
    assert env.db.rows('SELECT "counter" FROM "passkey"') == counter
    assert (await b.session())["user"]["id"] == guest_id


async def test_a_guest_who_registers_a_passkey_is_upgraded_in_place(env, browser_for):
    cart_table(env)
    on_link = Recorder()
    auth = env.make(plugins=[anonymous(on_link=on_link), passkey()])
    b = browser_for(auth)
    guest_id = (await guest(b))["user"]["id"]
    env.db.execute('INSERT INTO "cart" VALUES (?, ?, ?)', "c1", guest_id, "book")
    leaked = browser_for(auth)
    leaked.cookies = dict(b.cookies)
    other_tab = browser_for(auth)
    other_tab.cookies = {}
    device = Authenticator()
    # A second session of the same guest (say, a token that leaked).
    env.db.execute(
        'INSERT INTO "session" ("id","token","userId","expiresAt","createdAt","updatedAt") '
        'SELECT \'other\', \'other-token\', "userId", "expiresAt", "createdAt", "updatedAt" FROM "session"'
    )
    r = await register(b, device)
    assert r.status_code == 200, r.text
    me = (await b.session())["user"]
    assert me["id"] == guest_id and me["isAnonymous"] is False
    assert env.db.rows('SELECT "token" FROM "session" WHERE "token" = ?', "other-token") == []
    assert on_link.calls == []
    assert env.db.rows('SELECT "user_id" FROM "cart"') == [(guest_id,)]
    # The upgraded account signs in with its passkey from anywhere.
    fresh = browser_for(auth)
    assert (await sign_in(fresh, device)).json()["user"]["id"] == guest_id
    # And it is not a guest any more: guest-only routes refuse it.
    assert error(await b.post("/delete-anonymous-user", {})) == (403, "USER_IS_NOT_ANONYMOUS")


async def test_upgrade_can_be_turned_off(env, browser_for):
    cart_table(env)
    on_link = Recorder()
    auth = env.make(plugins=[anonymous(on_link=on_link), passkey(upgrade_anonymous=False)])
    b = browser_for(auth)
    guest_id = (await guest(b))["user"]["id"]
    device = Authenticator()
    assert (await register(b, device)).status_code == 200
    assert (await b.session())["user"]["isAnonymous"] is True
    # Signing in with one's own passkey as the same guest deletes nobody; on_link hears
    # of it (guest to itself), as in Better Auth (spec §7.3 step 5).
    r = await sign_in(b, device)
    assert r.status_code == 200 and r.json()["user"]["id"] == guest_id
    assert on_link.calls == [(guest_id, guest_id)]
    assert env.db.rows('SELECT COUNT(*) FROM "user" WHERE "id" = ?', guest_id) == [(1,)]


@pytest.mark.parametrize("bad", [{"origin": ["no-scheme"]}, {"rp_id": "https://example.com"}])
def test_bad_options_are_refused(env, bad):
    from kernia import ConfigurationError

    with pytest.raises(ConfigurationError):
        env.make(plugins=[passkey(**bad)])


def test_wrong_argument_types_raise_type_errors():
    with pytest.raises(TypeError):
        passkey(origin=3)
    with pytest.raises(TypeError):
        passkey(upgrade_anonymous="yes")
