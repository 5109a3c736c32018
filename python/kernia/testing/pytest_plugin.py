"""kernia's pytest plugin, loaded by pytest wherever kernia-rs is installed (``pytest11``
entry point). Fixtures for apps that test their own sign-in and guest flows:

- ``kernia_auth(**options)``: an ``Auth`` on a fresh SQLite file of its own (or
  ``database=...``), with the app's options; closed when the test ends.
- ``auth_client(app_or_auth, native=False)``: an HTTP client that keeps cookies like a
  browser and sends an ``Origin``; on the ASGI app, or with ``native=True`` on a native
  server started for the test. ``guest_client(...)`` is one signed in as a guest,
  ``signed_in_client(..., email=...)`` one signed up and in with email and password.
- ``mail_outbox``: senders to pass in the options (``mail_outbox.send_magic_link``,
  ``.send_verification_email``, ``.send_reset_password``, ``.send_otp``...) and every mail
  they got, newest last, with its link, token or code.
- ``auth_clock``: ``auth_clock.advance(seconds)`` moves the clock of every engine the test
  made with ``kernia_auth``; ``auth_clock.freeze()`` stops it, for exact times.
- ``passkey_authenticator``: a software authenticator
  (:class:`kernia.testing.authenticator.Authenticator`) and ``register(client)`` /
  ``sign_in(client)`` ceremonies through a client (needs ``cryptography``).
- ``assert_converted(auth, guest_id, new_user_id)``: the guest is gone, with its sessions
  and accounts, and the new user is there.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from kernia.testing import advance_clock, freeze_clock

SECRET = "kernia-test-secret-0123456789abcdef0123456789"
BASE = "http://localhost:3000"
#: ``AuthClient(origin=...)``'s default: the origin the requests go to.
_SERVED_FROM: Any = object()


class AuthClient:
    """An ``httpx.AsyncClient`` that keeps cookies like a browser and sends ``Origin``.
    Paths are relative to the auth base path (``await client.post("/sign-in/anonymous")``);
    ``client.http`` reaches the app's own routes, with the same cookies and ``Origin``
    (``await client.http.post("/api/cart/tea")``)."""

    def __init__(
        self, app: Any, *, base_url: str = BASE, base_path: str = "/api/auth", origin: Any = _SERVED_FROM
    ) -> None:
        import httpx

        # Every request through ``http`` carries ``cookies`` and the Origin (unless the request
        # names its own) and every answer's cookies are kept there, as a browser would; httpx's
        # own cookie jar stays empty, so ``cookies`` is the one place a test reads or sets them.
        hooks = {"request": [self._send_browser_headers], "response": [self._keep_cookies]}
        settings: dict[str, Any] = {
            "event_hooks": hooks,
            "cookies": CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        }
        if isinstance(app, str):
            self.http = httpx.AsyncClient(base_url=app, **settings)
        else:
            self.http = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=base_url, **settings
            )
        #: The ``Origin`` sent (by default where the requests go); ``None`` sends none.
        self.origin: str | None = (
            (app if isinstance(app, str) else base_url) if origin is _SERVED_FROM else origin
        )
        self.base_path = base_path
        self.cookies: dict[str, str] = {}

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        found = {"origin": self.origin} if self.origin else {}
        if self.cookies:
            found["cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return {**found, **(extra or {})}

    async def _send_browser_headers(self, request: Any) -> None:
        for name, value in self.headers().items():
            if name not in request.headers:
                request.headers[name] = value

    async def _keep_cookies(self, response: Any) -> None:
        self._keep(response)

    def _keep(self, response: Any) -> None:
        for raw in response.headers.get_list("set-cookie"):
            pair, _, attrs = raw.partition(";")
            name, _, value = pair.partition("=")
            if "max-age=0" in attrs.lower():
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = value

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        """A request to an auth route: ``path`` is relative to the base path."""
        return await self.http.request(method, self.base_path + path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return await self.request("POST", path, json={} if json is None else json, **kw)

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.request("GET", path, **kw)

    async def session(self) -> Any:
        """``GET /get-session``: ``{"session", "user"}`` or ``None``."""
        return (await self.get("/get-session")).json()

    async def sign_in_as_guest(self) -> dict[str, Any]:
        response = await self.post("/sign-in/anonymous")
        assert response.status_code == 200, response.text
        return response.json()["user"]

    async def sign_up(
        self, email: str, password: str = "correct-horse-battery", name: str = "Test User"
    ) -> Any:
        body = {"name": name, "email": email, "password": password}
        return await self.post("/sign-up/email", body)

    async def open(self, url: str, **kw: Any) -> Any:
        """Opens a link as a browser does from a mail: a GET of the link's path and query on
        the app or server this client talks to (redirects are not followed)."""
        parts = urlsplit(url)
        return await self.http.get(parts.path + (f"?{parts.query}" if parts.query else ""), **kw)

    async def aclose(self) -> None:
        await self.http.aclose()


@dataclass
class Mail:
    """One mail a sender got: ``kind`` (``"magic-link"``, ``"verification"``, ``"reset-password"``,
    ``"change-email"``, ``"delete-account"``, ``"otp"``), the address, and its link, token or code."""

    kind: str
    email: str
    url: str | None = None
    token: str | None = None
    otp: str | None = None
    data: dict[str, Any] | None = None
    #: What the client sent as ``metadata`` with a magic-link request.
    metadata: Any = None

    @property
    def link(self) -> str | None:
        return self.url

    def query(self, name: str) -> str | None:
        """A query parameter of the link (``mail.query("token")``)."""
        values = parse_qs(urlsplit(self.url or "").query).get(name)
        return values[0] if values else None


class MailOutbox:
    """Senders for the options, and what they got. With ``fail`` set to an exception, every
    sender records its mail and then raises it: a mailer that is down."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self.fail: BaseException | None = None

    def _keep(self, mail: Mail) -> None:
        self.mails.append(mail)
        if self.fail is not None:
            raise self.fail

    def _account(self, kind: str) -> Callable[..., None]:
        def send(data: dict[str, Any], ctx: Any = None) -> None:
            user = data.get("user") or {}
            email = (
                data.get("new_email")
                if kind == "change-email" and data.get("new_email")
                else user.get("email")
            )
            self._keep(Mail(kind, str(email), data.get("url"), data.get("token"), data=dict(data)))

        return send

    @property
    def send_verification_email(self) -> Callable[..., None]:
        return self._account("verification")

    @property
    def send_reset_password(self) -> Callable[..., None]:
        return self._account("reset-password")

    @property
    def send_change_email_confirmation(self) -> Callable[..., None]:
        return self._account("change-email")

    @property
    def send_delete_account_verification(self) -> Callable[..., None]:
        return self._account("delete-account")

    @property
    def send_magic_link(self) -> Callable[..., None]:
        def send(email: str, url: str, token: str, ctx: Any = None) -> None:
            self._keep(Mail("magic-link", email, url, token, metadata=getattr(ctx, "metadata", None)))

        return send

    @property
    def send_otp(self) -> Callable[..., None]:
        def send(data: dict[str, Any], ctx: Any = None) -> None:
            self._keep(Mail("otp", data["email"], otp=data["otp"], data=dict(data)))

        return send

    def of(self, email: str | None = None, kind: str | None = None) -> list[Mail]:
        """The mails to ``email`` (any address when ``None``) of ``kind`` (any kind when ``None``)."""
        return [
            m for m in self.mails if (email is None or m.email == email) and (kind is None or m.kind == kind)
        ]

    def last(self, email: str | None = None, kind: str | None = None) -> Mail:
        """The newest of :meth:`of`; fails the test when there is none."""
        found = self.of(email, kind)
        wanted = f"{kind or ''} mail to {email or 'anyone'}"
        assert found, f"no {wanted}; sent: {[(m.kind, m.email) for m in self.mails]}"
        return found[-1]


class AuthClock:
    """Moves the clocks of the engines the test made with ``kernia_auth``."""

    def __init__(self, auths: list[Any]) -> None:
        self._auths = auths

    def advance(self, seconds: float) -> None:
        for auth in self._auths:
            advance_clock(auth, seconds)

    def freeze(self) -> None:
        for auth in self._auths:
            freeze_clock(auth)


@pytest.fixture
def kernia_auth(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``kernia_auth(**options)``: an ``Auth`` on a fresh SQLite file (``database=`` to choose),
    ``secret`` and ``base_url`` (``http://localhost:3000``) filled in; closed after the test."""
    from kernia import KerniaOptions
    from kernia.auth import init

    made: list[Any] = []

    def make(**options: Any) -> Any:
        options.setdefault("database", f"sqlite:///{tmp_path / f'kernia-{len(made)}.db'}")
        options.setdefault("secret", SECRET)
        options.setdefault("base_url", BASE)
        auth = init(KerniaOptions(**options))
        made.append(auth)
        return auth

    make.auths = made  # type: ignore[attr-defined]
    yield make
    for auth in made:
        auth.close()


@pytest.fixture
def auth_clock(kernia_auth: Any) -> AuthClock:
    return AuthClock(kernia_auth.auths)


@pytest.fixture
def mail_outbox() -> MailOutbox:
    return MailOutbox()


@pytest.fixture
async def auth_client() -> AsyncIterator[Callable[..., AuthClient]]:
    """``auth_client(auth_or_app, native=False, **kw)``: a client on the ASGI app (an ``Auth``'s,
    or any ASGI app mounting it), or with ``native=True`` on a native server for the ``Auth``."""
    made: list[AuthClient] = []
    servers: list[Any] = []

    def client(target: Any, *, native: bool = False, **kw: Any) -> AuthClient:
        from kernia.auth import Auth

        if isinstance(target, Auth):
            # The Origin the app's own pages send: its base_url's.
            parts = urlsplit(target.options.base_url)
            kw.setdefault("origin", f"{parts.scheme}://{parts.netloc}")
        if native:
            assert isinstance(target, Auth), "native=True needs the Auth, not an app"
            servers.append(target.start_server(port=0))
            c = AuthClient(servers[-1].url, base_path=target.base_path, **kw)
        elif isinstance(target, Auth):
            c = AuthClient(target.router.mount(), base_path=target.base_path, **kw)
        else:
            c = AuthClient(target, **kw)
        made.append(c)
        return c

    yield client
    for c in made:
        await c.aclose()
    for server in servers:
        server.stop()


@pytest.fixture
def guest_client(auth_client: Callable[..., AuthClient]) -> Callable[..., Any]:
    """``await guest_client(auth_or_app, native=False)``: a client signed in as a new guest
    (``client.guest`` is the guest's user)."""

    async def make(target: Any, **kw: Any) -> AuthClient:
        c = auth_client(target, **kw)
        c.guest = await c.sign_in_as_guest()  # type: ignore[attr-defined]
        return c

    return make


@pytest.fixture
def signed_in_client(auth_client: Callable[..., AuthClient]) -> Callable[..., Any]:
    """``await signed_in_client(auth_or_app, email="ada@example.com", password=..., native=False)``:
    a client signed up (and so signed in) with email and password (``client.user``)."""

    async def make(
        target: Any, *, email: str = "ada@example.com", password: str = "correct-horse-battery", **kw: Any
    ) -> AuthClient:
        c = auth_client(target, **kw)
        response = await c.sign_up(email, password)
        assert response.status_code == 200, response.text
        c.user = response.json()["user"]  # type: ignore[attr-defined]
        return c

    return make


class PasskeyAuthenticator:
    """A software authenticator with the ceremonies through an :class:`AuthClient`."""

    def __init__(self) -> None:
        from kernia.testing.authenticator import Authenticator

        self.device = Authenticator(algorithm=None)

    async def register(self, client: AuthClient, name: str | None = None) -> dict[str, Any]:
        """Adds a passkey to the client's signed-in user (or guest); the verify answer."""
        options = (await client.get("/passkey/generate-register-options")).json()
        self.device.origin = client.origin
        body: dict[str, Any] = {"response": self.device.create(options)}
        if name is not None:
            body["name"] = name
        response = await client.post("/passkey/verify-registration", body)
        assert response.status_code == 200, response.text
        return response.json()

    async def sign_in(self, client: AuthClient) -> Any:
        """Signs the client in with this authenticator's newest passkey; the response."""
        options = (await client.get("/passkey/generate-authenticate-options")).json()
        self.device.origin = client.origin
        return await client.post("/passkey/verify-authentication", {"response": self.device.get(options)})


@pytest.fixture
def passkey_authenticator() -> PasskeyAuthenticator:
    pytest.importorskip("cryptography", reason="the software authenticator signs with cryptography")
    return PasskeyAuthenticator()


@pytest.fixture
def assert_converted() -> Callable[..., Any]:
    """``await assert_converted(auth, guest_id, new_user_id)``: the guest is gone with its
    sessions and accounts; the new user is there and registered."""

    async def check(auth: Any, guest_id: str, new_user_id: str) -> None:
        adapter = auth.context.adapter
        from kernia.types.adapter import Where

        assert await adapter.find_one(model="user", where=(Where("id", guest_id),)) is None, (
            "the guest is still there"
        )
        for model in ("session", "account"):
            left = await adapter.count(model=model, where=(Where("userId", guest_id),))
            assert left == 0, f"the guest still has {left} {model} row(s)"
        new = await adapter.find_one(model="user", where=(Where("id", new_user_id),))
        assert new is not None and not new.get("isAnonymous"), json.dumps(new, default=str)

    return check


__all__ = ["AuthClient", "AuthClock", "Mail", "MailOutbox", "PasskeyAuthenticator"]
