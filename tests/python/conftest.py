"""Fixtures: an engine per test on a fresh SQLite file and on PostgreSQL; a client that
keeps cookies.

PostgreSQL: the server named by KERNIA_TEST_POSTGRES_URL, or else the one on
127.0.0.1:5432 when it answers. The run creates a database of its own there and drops
it at the end; it never touches the database the URL names. Without a PostgreSQL the
cases are skipped with the reason shown; under CI (the CI variable set) a missing
PostgreSQL, Node.js or npm fails the run instead."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernia import EmailPasswordOptions, KerniaOptions, RateLimitOptions
from kernia.auth import Auth, init
from kernia.testing.pytest_plugin import AuthClient

SECRET = "test-secret-0123456789-0123456789-abcdef"
BASE = "http://localhost:3000"
#: The run's own PostgreSQL database (set by pytest_configure), or None without a server.
POSTGRES_URL: str | None = None
_POSTGRES_SERVER: str | None = None
NO_POSTGRES = "no PostgreSQL answers (set KERNIA_TEST_POSTGRES_URL, or start one on 127.0.0.1:5432)"


def skip_or_fail(reason: str) -> None:
    """Skips the test, or fails it under CI, where everything the tests need is installed."""
    if os.environ.get("CI"):
        pytest.fail(f"under CI this must not be missing: {reason}", pytrace=False)
    pytest.skip(reason)


def _with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
        conn.execute(sql)


def pytest_configure(config: pytest.Config) -> None:
    global POSTGRES_URL, _POSTGRES_SERVER
    named = os.environ.get("KERNIA_TEST_POSTGRES_URL")
    server = named or "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"kernia_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        _admin(server, f'CREATE DATABASE "{name}"')
    except Exception as e:
        if named or os.environ.get("CI"):
            raise pytest.UsageError(f"PostgreSQL at {server} is required and did not answer: {e}") from None
        return
    _POSTGRES_SERVER, POSTGRES_URL = server, _with_database(server, name)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _POSTGRES_SERVER and POSTGRES_URL:
        name = POSTGRES_URL.rsplit("/", 1)[1].split("?")[0]
        _admin(_POSTGRES_SERVER, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_url(backend: str, tmp_path: Any, name: str = "auth.db") -> str:
    """Where a test on `backend` keeps its data: a SQLite file in its own folder, or the
    run's PostgreSQL database (skipped, or failed under CI, when none answers)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / name}"
    if not POSTGRES_URL:
        skip_or_fail(NO_POSTGRES)
    return POSTGRES_URL


class SqliteReader:
    """SQL on SQLite files through a helper process (see sqlite_reader.py for why)."""

    def __init__(self) -> None:
        script = Path(__file__).with_name("sqlite_reader.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def run(self, path: str, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"path": path, "sql": sql, "params": list(params)}) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return [tuple(r) for r in answer["rows"]]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


_reader: SqliteReader | None = None


def sqlite_reader() -> SqliteReader:
    global _reader
    if _reader is None:
        _reader = SqliteReader()
    return _reader


class Database:
    """Reads rows straight from the database, to check what a request left there."""

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        self.url = url

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.backend == "sqlite":
            return sqlite_reader().run(self.url.removeprefix("sqlite:///"), sql, params)
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(sql.replace("?", "%s"), params).fetchall()

    def execute(self, sql: str, *params: Any) -> None:
        self.rows(sql, *params) if self.backend == "sqlite" else self._pg_execute(sql, params)

    def _pg_execute(self, sql: str, params: tuple[Any, ...]) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.replace("?", "%s"), params)

    def count(self, table: str) -> int:
        return self.rows(f'SELECT COUNT(*) FROM "{table}"')[0][0]

    def assert_gone(self, user_id: str) -> None:
        """The user is deleted with everything of theirs: no user, session, account or passkey row."""
        left = {
            table: self.rows(f'SELECT COUNT(*) FROM "{table}" WHERE "{column}" = ?', user_id)[0][0]
            for table, column in (
                ("user", "id"),
                ("session", "userId"),
                ("account", "userId"),
                ("passkey", "userId"),
            )
        }
        assert left == {"user": 0, "session": 0, "account": 0, "passkey": 0}, f"{user_id} is not gone: {left}"

    def snapshot(self) -> dict[str, int]:
        return {t: self.count(t) for t in ("user", "session", "account", "verification")}


@dataclass
class Env:
    backend: str
    db: Database
    make: Callable[..., Auth]
    auths: list[Auth] = field(default_factory=list)


def _options(url: str, **overrides: Any) -> KerniaOptions:
    defaults: dict[str, Any] = {
        "database": url,
        "secret": SECRET,
        "base_url": BASE,
        "email_and_password": EmailPasswordOptions(enabled=True),
        "rate_limit": RateLimitOptions(enabled=False),
    }
    defaults.update(overrides)
    return KerniaOptions(**defaults)


BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    backend = request.param
    url = database_url(backend, tmp_path)
    db = Database(backend, url)
    made: list[Auth] = []

    def make(**overrides: Any) -> Auth:
        auth = init(_options(url, **overrides))
        made.append(auth)
        return auth

    if backend == "postgres":
        make()  # creates the schema
        # The run's own database (see pytest_configure): each test starts from empty tables.
        db.execute(
            'TRUNCATE "user", "session", "account", "verification", "passkey", "rateLimit", "guestFunnel" CASCADE'
        )
    e = Env(backend, db, make, made)
    yield e
    for auth in made:
        auth.close()


@pytest.fixture
def open_auth() -> Any:
    """`init(options)` for tests that build their own options; every engine it opened is
    closed when the test ends, passed or failed."""
    made: list[Auth] = []

    def open_(options: KerniaOptions) -> Auth:
        auth = init(options)
        made.append(auth)
        return auth

    yield open_
    for auth in made:
        auth.close()


class Browser(AuthClient):
    """The plugin's client (:class:`kernia.testing.pytest_plugin.AuthClient`) as these tests
    use it: ``Origin`` is the app's (``None``: no header), a POST without ``json`` has no
    body, and Ada's credentials by default. ``app`` is an ASGI app, or a running server's URL."""

    def __init__(self, app: Any, origin: str | None = BASE, base_path: str = "/api/auth") -> None:
        super().__init__(app, base_url=BASE, base_path=base_path, origin=origin)
        self.client = self.http

    async def post(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        if json is not None:
            kw["json"] = json
        return await self.request("POST", path, **kw)

    async def sign_up(self, email: str = "ada@example.com", password: str = "correct-horse", **extra: Any):
        return await self.post(
            "/sign-up/email", {"name": "Ada", "email": email, "password": password, **extra}
        )

    async def sign_in(self, email: str = "ada@example.com", password: str = "correct-horse", **extra: Any):
        return await self.post("/sign-in/email", {"email": email, "password": password, **extra})


@pytest.fixture(params=["asgi", "native"])
def transport(request: pytest.FixtureRequest) -> str:
    """Every test that talks HTTP runs through the ASGI app and through the native server."""
    return request.param


@pytest.fixture
async def browser_for(transport: str) -> AsyncIterator[Callable[..., Browser]]:
    made: list[Browser] = []
    servers: dict[int, Any] = {}

    def factory(auth_or_app: Any, **kw: Any) -> Browser:
        if not isinstance(auth_or_app, Auth):
            app = auth_or_app
        elif transport == "asgi":
            app = auth_or_app.router.mount()
        else:
            if id(auth_or_app) not in servers:
                servers[id(auth_or_app)] = auth_or_app.start_server(port=0)
            app = servers[id(auth_or_app)].url
        b = Browser(app, **kw)
        made.append(b)
        return b

    yield factory
    for b in made:
        await b.aclose()
    for server in servers.values():
        server.stop()


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """Cookie name -> the whole Set-Cookie line."""
    return {raw.split("=", 1)[0]: raw for raw in response.headers.get_list("set-cookie")}


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    if _reader is not None:
        _reader.close()


def parse_iso(value: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00"))
