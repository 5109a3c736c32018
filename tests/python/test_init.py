"""init(): options, errors, mounting in Starlette and FastAPI, and the server-side API."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.routing import Mount

import kernia
from kernia import ConfigurationError, EmailPasswordOptions, KerniaError, KerniaOptions, RateLimitOptions
from kernia.auth import init
from kernia.integrations.fastapi import session_dependency

from conftest import SECRET, Browser, database_url


def test_public_api_is_importable():
    for name in (
        "KerniaOptions",
        "EmailPasswordOptions",
        "SessionOptions",
        "RateLimitOptions",
        "RateLimitRule",
        "APIError",
    ):
        assert hasattr(kernia, name)
    assert issubclass(ConfigurationError, KerniaError)
    assert issubclass(kernia.APIError, KerniaError)
    assert KerniaOptions(database="sqlite::memory:").base_path == "/api/auth"


def test_a_secret_is_required(monkeypatch):
    monkeypatch.delenv("KERNIA_SECRET", raising=False)
    monkeypatch.delenv("BETTER_AUTH_SECRET", raising=False)
    with pytest.raises(ConfigurationError, match="secret is required"):
        init(KerniaOptions(database="sqlite::memory:"))


@pytest.mark.parametrize("variable", ["KERNIA_SECRET", "BETTER_AUTH_SECRET"])
async def test_the_secret_can_come_from_the_environment(monkeypatch, tmp_path, variable):
    # The environment's secret is the one that signs: a session made under it is
    # valid under the same secret given explicitly, and under no other.
    for name in ("KERNIA_SECRET", "BETTER_AUTH_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, SECRET)
    options = KerniaOptions(
        database=f"sqlite:///{tmp_path / 'auth.db'}", email_and_password=EmailPasswordOptions(enabled=True)
    )
    from_env = init(options)
    try:
        b = Browser(from_env.router.mount())
        assert (await b.sign_up()).status_code == 200
        await b.aclose()
        cookie = "; ".join(f"{k}={v}" for k, v in b.cookies.items())
    finally:
        from_env.close()
    monkeypatch.delenv(variable)
    for secret, valid in ((SECRET, True), ("another-secret-0123456789-0123456789-abcdef", False)):
        auth = init(dataclasses.replace(options, secret=secret))
        try:
            found = await auth.api.get_session({"cookie": cookie})
            assert (found is not None) is valid, secret
        finally:
            auth.close()


@pytest.mark.parametrize("url", ["mysql://root@localhost/db", "redis://localhost", "app.db", "sqlite:///"])
def test_unknown_or_malformed_database_urls(url):
    with pytest.raises(ConfigurationError, match="database URL"):
        init(KerniaOptions(database=url, secret=SECRET))


def test_a_sqlite_file_that_cannot_be_opened(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot open SQLite database"):
        init(KerniaOptions(database=f"sqlite:///{tmp_path}/missing-dir/app.db", secret=SECRET))


def test_a_postgres_server_that_cannot_be_reached():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free, and nothing listens once closed
    with pytest.raises(ConfigurationError, match="cannot connect to PostgreSQL") as e:
        init(KerniaOptions(database=f"postgresql://kernia:pw-not-shown@127.0.0.1:{port}/db", secret=SECRET))
    assert "pw-not-shown" not in str(e.value)


def test_wrong_types_fail_at_init():
    with pytest.raises(TypeError, match="database"):
        init(KerniaOptions(database=42, secret=SECRET))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="trusted_origins"):
        init(KerniaOptions(database="sqlite::memory:", secret=SECRET, trusted_origins="https://x.com"))
    with pytest.raises(TypeError, match="cors_origins"):
        init(KerniaOptions(database="sqlite::memory:", secret=SECRET, cors_origins="https://x.com"))
    with pytest.raises(TypeError):
        init({"database": "sqlite::memory:"})  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["localhost:3000", "http://localhost:3000/app", "https://*.example.com", "*"])
def test_cors_origins_must_be_origins(bad):
    with pytest.raises(ConfigurationError, match="cors_origins"):
        init(KerniaOptions(database="sqlite::memory:", secret=SECRET, cors_origins=[bad]))


def test_bad_values_fail_at_init():
    with pytest.raises(ConfigurationError, match="base_url"):
        init(KerniaOptions(database="sqlite::memory:", secret=SECRET, base_url="localhost"))
    with pytest.raises(ConfigurationError, match="unknown field"):
        init(KerniaOptions(database="sqlite::memory:", secret=SECRET, advanced={"cookie_prefx": "x"}))
    with pytest.raises(ConfigurationError, match="min_password_length"):
        init(
            KerniaOptions(
                database="sqlite::memory:",
                secret=SECRET,
                email_and_password=EmailPasswordOptions(min_password_length=0),
            )
        )


@pytest.fixture
def app_auth(tmp_path, open_auth):
    """An engine on a SQLite file, closed when the test ends."""

    def make(**kw):
        return open_auth(
            KerniaOptions(
                database=f"sqlite:///{tmp_path / 'app.db'}",
                secret=SECRET,
                email_and_password=EmailPasswordOptions(enabled=True),
                rate_limit=RateLimitOptions(enabled=False),
                **kw,
            )
        )

    return make


async def test_mounted_in_starlette_under_a_prefix(app_auth):
    auth = app_auth()
    app = Starlette(routes=[Mount("/api/auth", app=auth.router.mount())])
    b = Browser(app)
    assert (await b.sign_up()).status_code == 200
    assert (await b.session())["user"]["email"] == "ada@example.com"
    assert (await b.get("/nope")).status_code == 404
    await b.aclose()


async def test_mounted_under_another_prefix_serves_there(app_auth):
    auth = app_auth()
    app = Starlette(routes=[Mount("/auth", app=auth.router.mount())])
    b = Browser(app, base_path="/auth")
    assert (await b.sign_up()).status_code == 200
    await b.aclose()


async def test_standalone_serves_base_path(app_auth):
    auth = app_auth(base_path="/identity")
    b = Browser(auth.router.mount(), base_path="/identity")
    assert (await b.sign_up()).status_code == 200
    b.base_path = "/api/auth"
    assert (await b.get("/get-session")).status_code == 404
    await b.aclose()


async def test_fastapi_app_with_a_session_dependency(app_auth):
    auth = app_auth()
    app = FastAPI()
    app.mount("/api/auth", auth.router.mount())

    required, optional = session_dependency(auth), session_dependency(auth, required=False)

    @app.get("/me")
    async def me(session=Depends(required)):
        return {"email": session["user"]["email"]}

    @app.get("/maybe")
    async def maybe(session=Depends(optional)):
        return {"signed_in": session is not None}

    b = Browser(app, base_path="")
    assert (await b.get("/me")).status_code == 401
    assert (await b.get("/maybe")).json() == {"signed_in": False}
    assert (
        await b.post(
            "/api/auth/sign-up/email", {"name": "A", "email": "fa@example.com", "password": "password123"}
        )
    ).status_code == 200
    assert (await b.get("/me")).json() == {"email": "fa@example.com"}
    assert (await b.get("/maybe")).json() == {"signed_in": True}
    await b.aclose()


async def test_api_get_session_takes_dicts_and_header_pairs(app_auth):
    auth = app_auth()
    b = Browser(auth.router.mount())
    token = (await b.sign_up()).json()["token"]
    cookie = "; ".join(f"{k}={v}" for k, v in b.cookies.items())
    for headers in ({"cookie": cookie}, [(b"cookie", cookie.encode())], [("Cookie", cookie)]):
        s = await auth.api.get_session(headers)
        assert s is not None and s["session"]["token"] == token
    assert await auth.api.get_session({}) is None
    assert await auth.api.get_session({"cookie": "better-auth.session_token=forged.sig"}) is None
    await b.aclose()


async def test_lifespan_is_answered(app_auth):
    auth = app_auth()
    app = auth.router.mount()
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(m):
        sent.append(m["type"])

    await app({"type": "lifespan"}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_exiting_while_results_are_on_their_way(backend, tmp_path):
    # Without the exit hook, a worker still inside call_soon_threadsafe when the
    # interpreter finalizes is ended by CPython, and the process aborts (SIGABRT)
    # after its last line; this script did so on every run.
    url = database_url(backend, tmp_path)
    script = Path(__file__).with_name("exit_race.py")
    for _ in range(5):
        done = subprocess.run(
            [sys.executable, str(script), url, "50"], capture_output=True, text=True, timeout=60
        )
        assert (done.returncode, done.stdout) == (0, "done\n"), done.stderr


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (lambda: kernia.plugins.anonymous(max_age=0), "anonymous(): max_age"),
        (lambda: kernia.plugins.anonymous(cleanup_interval=60), "anonymous(): cleanup_interval"),
        (lambda: kernia.plugins.username(min_username_length=9, max_username_length=3), "username(): "),
        (lambda: kernia.plugins.magic_link(lambda *a: None, expires_in=0), "magic_link(): expires_in"),
        (lambda: kernia.plugins.passkey(rp_id="https://example.com"), "passkey(): rp_id"),
    ],
)
def test_every_plugin_is_checked_by_the_engine_when_built(build, named):
    # One rule, one place: the values are checked by the engine's rules (the ones
    # init() applies), when the plugin is built, as a ConfigurationError that is
    # also a ValueError and names the plugin and the option.
    with pytest.raises(ConfigurationError) as raised:
        build()
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, KerniaError)
    assert str(raised.value).startswith(named), raised.value


def test_every_plugin_has_one_shape():
    from kernia import plugins

    built = [
        plugins.anonymous(on_link=lambda *a: None),
        plugins.username(),
        plugins.magic_link(lambda *a: None),
        plugins.passkey(),
    ]
    for plugin in built:
        assert isinstance(plugin.id, str)
        assert isinstance(plugin.options(), dict) and isinstance(plugin.callables(), dict)
    assert set(built[0].callables()) == {"on_link"}
