"""What outside testing found, each kept fixed: URLs read as browsers read them on every
route that takes one, login CSRF through ``Origin: null``, options that must take effect,
NUL characters, and the native server's limits (slow bodies, early 413, connection limit,
Host). On SQLite and PostgreSQL, through the ASGI app and the native server."""

from __future__ import annotations

import asyncio
import socket
import time
from urllib.parse import quote

import pytest
from helpers import PREFIX, eventually_sync, request_link

from kernia import ConfigurationError, EmailPasswordOptions, KerniaOptions
from kernia.auth import init
from kernia.plugins.anonymous import anonymous
from kernia.plugins.email_and_password import email_and_password
from kernia.plugins.magic_link import magic_link
from kernia.plugins.passkey import passkey
from kernia.plugins.username import username

from conftest import SECRET

# Each of these lands a browser somewhere other than http://localhost:3000 (the base URL),
# or runs code there, though a check that splits strings may read localhost:3000 in it.
BYPASSES = [
    "http://evil.com\\@localhost:3000",
    "http://evil.com\\@localhost:3000/",
    "http://evil.com%5C@localhost:3000",
    "http://evil.com%5c@localhost:3000/x",
    "https://evil.com\\.localhost:3000",
    "http://localhost:3000@evil.com",
    "http://localhost:3000:pw@evil.com/",
    "http://evil.com#@localhost:3000",
    "http://evil.com?@localhost:3000",
    "http://evil.com\t@localhost:3000",
    "http://evil.com\n@localhost:3000",
    "http://evil.com\r\n@localhost:3000",
    "\t//evil.com",
    "//evil.com",
    "///evil.com",
    "//evil.com/localhost:3000",
    "/\\evil.com",
    "/\t/evil.com",
    "/\n/evil.com",
    "/%2F/evil.com",
    "/%2fevil.com",
    "/%5Cevil.com",
    "\\\\evil.com",
    "http:evil.com",
    "http:/evil.com",
    "https:\\\\evil.com",
    "javascript:alert(1)",
    "JavaScript://localhost:3000/%0aalert(1)",
    "data:text/html,<script>alert(1)</script>",
    "http://localhost:3000.evil.com",
    "http://localhost%3A3000@evil.com",
    " http://evil.com",
    "http://[::1]@evil.com",
    "http://evil.com%23@localhost:3000",
]

GOOD = ["/dashboard?tab=1", "http://localhost:3000/welcome"]


async def test_sign_in_refuses_every_bypass_shape(env, browser_for):
    b = browser_for(env.make())
    assert (await b.sign_up()).status_code == 200
    b.cookies.clear()
    for url in BYPASSES:
        r = await b.sign_in(callbackURL=url)
        assert (r.status_code, r.json().get("code")) == (403, "INVALID_CALLBACK_URL"), url
        assert "location" not in r.headers and not b.cookies, url
    for url in GOOD:
        r = await b.sign_in(callbackURL=url)
        assert r.status_code == 200 and r.json()["url"] == url == r.headers["location"], url


async def test_sign_in_answers_with_the_url_it_checked(env, browser_for):
    """Tabs vanish and backslashes turn into slashes in browsers: the URL answered is that form."""
    b = browser_for(env.make())
    assert (await b.sign_up()).status_code == 200
    r = await b.sign_in(callbackURL="http://local\thost:3000\\welcome")
    assert r.status_code == 200
    assert r.json()["url"] == r.headers["location"] == "http://localhost:3000/welcome"


async def test_sign_up_refuses_every_bypass_shape_and_creates_nobody(env, browser_for):
    b = browser_for(env.make())
    for i, url in enumerate(BYPASSES):
        r = await b.sign_up(f"u{i}@example.com", callbackURL=url)
        assert (r.status_code, r.json().get("code")) == (403, "INVALID_CALLBACK_URL"), url
    assert env.db.count("user") == 0


@pytest.mark.parametrize(
    "field, code",
    [
        ("callbackURL", "INVALID_CALLBACK_URL"),
        ("newUserCallbackURL", "INVALID_NEW_USER_CALLBACK_URL"),
        ("errorCallbackURL", "INVALID_ERROR_CALLBACK_URL"),
    ],
)
async def test_magic_link_request_refuses_every_bypass_shape(env, browser_for, field, code, mail_outbox):
    b = browser_for(env.make(plugins=[magic_link(mail_outbox.send_magic_link)]))
    for url in BYPASSES:
        r = await b.post("/sign-in/magic-link", {"email": "ada@example.com", field: url})
        assert (r.status_code, r.json().get("code")) == (403, code), url
    assert mail_outbox.mails == [] and env.db.count("verification") == 0


@pytest.mark.parametrize("field", ["callbackURL", "newUserCallbackURL", "errorCallbackURL"])
async def test_magic_link_verify_never_redirects_off_site(env, browser_for, field, mail_outbox):
    b = browser_for(env.make(plugins=[magic_link(mail_outbox.send_magic_link)]))
    for url in BYPASSES:
        # Once as a client encodes it, once encoded twice (verify decodes a second time).
        for encoded in (quote(url, safe=""), quote(quote(url, safe=""), safe="")):
            r = await b.get(f"/magic-link/verify?token=bogus&{field}={encoded}")
            assert (r.status_code, r.json().get("code")) == (403, "INVALID_CALLBACK_URL"), (url, encoded)
            assert "location" not in r.headers


async def test_a_valid_magic_link_with_an_off_site_callback_signs_nobody_in(env, browser_for, mail_outbox):
    b = browser_for(env.make(plugins=[magic_link(mail_outbox.send_magic_link)]))
    await request_link(b)
    token = mail_outbox.last().token
    evil = quote("http://evil.com%5C@localhost:3000", safe="")
    r = await b.get(f"/magic-link/verify?token={token}&callbackURL={evil}")
    assert r.status_code == 403 and "location" not in r.headers
    assert not b.cookies and env.db.count("session") == 0
    # The link still works with its own callback.
    r = await b.open(mail_outbox.last().url)
    assert r.status_code == 302 and r.headers["location"] == "http://localhost:3000/"


# --- login CSRF through Origin: null -------------------------------------------------------------------
# Every route that takes a form body (a cross-site page can post one without CORS).


@pytest.mark.parametrize("form", [False, True])
async def test_origin_null_is_refused_on_every_form_route(env, browser_for, form, mail_outbox):
    auth = env.make(plugins=[magic_link(mail_outbox.send_magic_link), username()])
    setup = browser_for(auth)
    assert (await setup.sign_up(username="ada")).status_code == 200
    sandboxed = browser_for(auth, origin="null")
    bodies = {
        "/sign-up/email": {"name": "Eve", "email": "eve@example.com", "password": "correct-horse"},
        "/sign-in/email": {"email": "ada@example.com", "password": "correct-horse"},
        "/sign-up/username": {"username": "eve", "password": "correct-horse"},
        "/sign-in/magic-link": {"email": "ada@example.com"},
    }
    before = env.db.snapshot()
    for path, body in bodies.items():
        kw = {"data": body} if form else {"json": body}
        r = await sandboxed.request("POST", path, **kw)
        assert (r.status_code, r.json().get("code")) == (403, "MISSING_OR_NULL_ORIGIN"), path
        assert "set-cookie" not in r.headers, path
    assert env.db.snapshot() == before and mail_outbox.mails == []


# --- options take effect -------------------------------------------------------------------------------


async def test_kernias_email_password_setup_keeps_its_options(env, browser_for):
    """``plugins=[email_and_password()]`` with the settings in ``KerniaOptions.email_and_password``."""
    auth = env.make(
        email_and_password=EmailPasswordOptions(
            enabled=True, require_email_verification=True, min_password_length=12
        ),
        plugins=[email_and_password()],
    )
    b = browser_for(auth)
    r = await b.sign_up(password="nine-char")
    assert (r.status_code, r.json()["code"]) == (400, "PASSWORD_TOO_SHORT")
    r = await b.sign_up(password="twelve-chars")
    assert r.status_code == 200 and r.json()["token"] is None and not b.cookies
    r = await b.sign_in(password="twelve-chars")
    assert (r.status_code, r.json()["code"]) == (403, "EMAIL_NOT_VERIFIED")
    assert env.db.count("session") == 0


async def test_email_and_password_arguments_apply_over_the_options(env, browser_for):
    b = browser_for(env.make(plugins=[email_and_password(min_password_length=10)]))
    r = await b.sign_up(password="nine-char")
    assert (r.status_code, r.json()["code"]) == (400, "PASSWORD_TOO_SHORT")


def test_contradicting_email_password_settings_are_refused():
    options = KerniaOptions(
        database="sqlite::memory:",
        secret=SECRET,
        email_and_password=EmailPasswordOptions(enabled=True, min_password_length=12),
        plugins=[email_and_password(min_password_length=10)],
    )
    with pytest.raises(ConfigurationError, match=r"min_password_length"):
        init(options)
    with pytest.raises(TypeError, match="min_password_length must be int"):
        email_and_password(min_password_length="12")


@pytest.mark.parametrize("kernia_way", [False, True])
async def test_magic_link_generate_token_and_custom_hasher_take_effect(
    env, browser_for, kernia_way, mail_outbox
):
    asked: list[str] = []

    async def generate_token(email: str) -> str:
        asked.append(email)
        return "tok-" + email.split("@")[0]

    def hash_token(token: str) -> str:
        return "h:" + token[::-1]

    settings = {
        "generate_token": generate_token,
        "store_token": {"type": "custom-hasher", "hash": hash_token},
    }
    if kernia_way:
        auth = env.make(
            plugins=[magic_link()],
            advanced={"magic-link": {"send_magic_link": mail_outbox.send_magic_link, **settings}},
        )
    else:
        auth = env.make(plugins=[magic_link(mail_outbox.send_magic_link, **settings)])
    b = browser_for(auth)
    await request_link(b)
    assert asked == ["ada@example.com"] and mail_outbox.last().token == "tok-ada"
    assert env.db.rows('SELECT "identifier" FROM "verification"') == [("h:ada-kot",)]
    r = await b.open(mail_outbox.last().url)
    assert r.status_code == 302 and b.cookies
    assert env.db.count("verification") == 0


async def test_kernias_data_and_ctx_sender_form(env, browser_for):
    got = []

    async def send(data, ctx):
        got.append(data)

    b = browser_for(env.make(plugins=[magic_link(send)]))
    await request_link(b, metadata={"from": "test"})
    assert got[0]["email"] == "ada@example.com" and got[0]["metadata"] == {"from": "test"}
    assert got[0]["url"].startswith(PREFIX + "/magic-link/verify?token=" + got[0]["token"])


def _init(**kw):
    return init(KerniaOptions(database="sqlite::memory:", secret=SECRET, **kw))


def test_magic_link_settings_that_cannot_take_effect_are_refused(mail_outbox):
    with pytest.raises(ConfigurationError, match="token_length"):
        _init(
            plugins=[magic_link()],
            advanced={"magic-link": {"send_magic_link": mail_outbox.send_magic_link, "token_length": 8}},
        )
    with pytest.raises(ConfigurationError, match="expires_in"):
        _init(
            plugins=[magic_link(expires_in=30)],
            advanced={"magic-link": {"send_magic_link": mail_outbox.send_magic_link, "expires_in": 60}},
        )
    with pytest.raises(ConfigurationError, match=r"magic_link\(\) is not in plugins"):
        _init(advanced={"magic-link": {"send_magic_link": mail_outbox.send_magic_link}})
    with pytest.raises(ValueError, match="store_token"):
        magic_link(mail_outbox.send_magic_link, store_token={"type": "sha512"})
    with pytest.raises(TypeError, match="hash"):
        magic_link(mail_outbox.send_magic_link, store_token={"type": "custom-hasher"})
    with pytest.raises(TypeError, match="generate_token"):
        magic_link(mail_outbox.send_magic_link, generate_token="abc")
    # The same value in both places is no contradiction.
    _init(
        plugins=[magic_link(expires_in=60)],
        advanced={"magic-link": {"send_magic_link": mail_outbox.send_magic_link, "expires_in": 60}},
    ).close()


# --- NUL characters ------------------------------------------------------------------------------------


async def test_nul_characters_are_a_400_that_changes_nothing(env, browser_for, mail_outbox):
    from test_passkey import register

    from kernia.testing.authenticator import Authenticator

    auth = env.make(plugins=[anonymous(), username(), magic_link(mail_outbox.send_magic_link), passkey()])
    b = browser_for(auth)
    assert (await b.sign_up(username="ada")).status_code == 200
    assert (await register(b, Authenticator())).status_code == 200
    g = browser_for(auth)
    assert (await g.post("/sign-in/anonymous")).status_code == 200
    before = env.db.snapshot()
    cases = [
        (browser_for(auth), "GET", "/magic-link/verify?token=%00", None),
        (browser_for(auth), "POST", "/sign-up/email", {"name": "A\0", "email": "n@example.com", "password": "correct-horse"}),
        (browser_for(auth), "POST", "/sign-up/email", {"name": "A", "email": "n@example.com", "password": "correct-horse", "image": "x\0"}),
        (browser_for(auth), "POST", "/sign-up/email", {"name": "A", "email": "n@example.com", "password": "correct-horse", "username": "nn", "displayUsername": "N\0"}),
        (g, "POST", "/anonymous/upgrade", {"email": "g@example.com", "password": "correct-horse", "name": "G\0"}),
        (b, "POST", "/passkey/delete-passkey", {"id": "\0"}),
        (b, "POST", "/passkey/update-passkey", {"id": "x", "name": "\0"}),
        (browser_for(auth), "POST", "/passkey/verify-authentication", {"response": {"id": "\0", "response": {}}}),
        (browser_for(auth), "POST", "/is-username-available", {"username": "a\0"}),
    ]  # fmt: skip
    for client, method, path, body in cases:
        r = await client.request(method, path, **({"json": body} if body is not None else {}))
        assert (r.status_code, r.json().get("code")) == (400, "VALIDATION_ERROR"), (path, r.text)
        assert "NUL" in r.json()["message"], path
    assert env.db.snapshot() == before


# --- the native server's limits --------------------------------------------------------------------------


def _connect(server) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.port))
    s.settimeout(20)
    return s


def _read_all(s: socket.socket) -> bytes:
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return out


@pytest.fixture
def native(env):
    """A native server of an engine with short request timeouts and a small connection limit."""
    servers = []

    def start(**advanced):
        auth = env.make(advanced={"request_timeout": 1, **advanced})
        servers.append(auth.start_server(port=0))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


@pytest.mark.parametrize(
    "head",
    [
        b'Content-Length: 100\r\n\r\n{"email"',
        b"Transfer-Encoding: chunked\r\n\r\n",
        b'Transfer-Encoding: chunked\r\n\r\n6\r\n{"emai\r\n',
    ],
    ids=["short-content-length", "silent-chunked", "stalled-chunked"],
)
def test_a_body_that_never_finishes_is_answered_408_and_closed(native, head):
    server = native()
    s = _connect(server)
    started = time.monotonic()
    s.sendall(
        b"POST /api/auth/sign-in/email HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + head
    )
    answer = _read_all(s)
    assert answer.startswith(b"HTTP/1.1 408 ") and b'"code":"REQUEST_TIMEOUT"' in answer
    assert time.monotonic() - started < 10  # closed, not held for as long as the client likes


def test_a_declared_body_over_the_limit_is_413_before_it_is_sent(native):
    server = native(max_body_size=1000)
    s = _connect(server)
    s.sendall(
        b"POST /api/auth/sign-up/email HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 5000000000\r\n\r\n"
    )
    s.settimeout(5)
    first = s.recv(65536)  # the answer comes without a byte of the body sent
    assert first.startswith(b"HTTP/1.1 413 ") and b"PAYLOAD_TOO_LARGE" in first


def test_connections_over_the_limit_are_refused_politely_and_the_server_recovers(native):
    server = native(max_connections=4, request_timeout=30)
    idle = [_connect(server) for _ in range(4)]
    for s in idle:  # each one answered once, so the server holds all four
        s.sendall(b"GET /api/auth/ok HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
    over = _connect(server)
    answer = _read_all(over)
    assert answer.startswith(b"HTTP/1.1 503 ") and b"retry-after: 2" in answer.lower()
    assert b'"code":"TOO_MANY_CONNECTIONS"' in answer
    idle.pop().close()

    def served() -> bool:
        s = _connect(server)
        s.sendall(b"GET /api/auth/ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return _read_all(s).startswith(b"HTTP/1.1 200 ")

    # The server notices the closed connection on its own time: nothing to await but that.
    eventually_sync(served, "a connection to be served again once one closed", timeout=5)
    for s in idle:
        s.close()


def test_http_1_1_without_host_is_400(native):
    server = native()
    s = _connect(server)
    s.sendall(b"GET /api/auth/ok HTTP/1.1\r\n\r\n")
    answer = _read_all(s)
    assert answer.startswith(b"HTTP/1.1 400 ") and b'"code":"MISSING_HOST"' in answer
    s = _connect(server)
    s.sendall(b"GET /api/auth/ok HTTP/1.0\r\n\r\n")
    assert _read_all(s).startswith(b"HTTP/1.0 200 ")


# --- the same limits through the ASGI app ---------------------------------------------------------------


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]], http_version: str = "1.1") -> dict:
    return {
        "type": "http",
        "http_version": http_version,
        "method": method,
        "path": path,
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
    }


async def _call(app, scope, receive) -> tuple[int, bytes]:
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def test_asgi_a_body_that_never_finishes_is_408(env):
    app = env.make(advanced={"request_timeout": 0.5}).router.mount()
    first = True

    async def receive():
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b'{"email"', "more_body": True}
        await asyncio.sleep(3600)

    headers = [(b"host", b"x"), (b"content-type", b"application/json")]
    status, body = await asyncio.wait_for(
        _call(app, _scope("POST", "/api/auth/sign-in/email", headers), receive), 10
    )
    assert status == 408 and b"REQUEST_TIMEOUT" in body


async def test_asgi_http_1_1_without_host_is_400(env):
    app = env.make().router.mount()

    async def receive():
        return {"type": "http.request", "body": b""}

    status, body = await _call(app, _scope("GET", "/api/auth/ok", []), receive)
    assert status == 400 and b"MISSING_HOST" in body
    status, _ = await _call(app, _scope("GET", "/api/auth/ok", [], http_version="1.0"), receive)
    assert status == 200
