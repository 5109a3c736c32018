"""``init(options)``: builds the engine and returns the handle an app uses."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import signal
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from kernia import options as kinds
from kernia._native import NativeAuth
from kernia.auth.adapter import BoundAdapter, EngineAdapter
from kernia.auth.asgi import ASGIApp
from kernia.auth.db import Database
from kernia.auth.sweeper import Sweeper
from kernia.error import PLUGIN_ERROR_CODES, ErrorRegistry, error_codes
from kernia.errors import ConfigurationError
from kernia.options import EmailPasswordOptions, KerniaOptions, RateLimitRule
from kernia.plugins._check import options_key
from kernia.plugins.anonymous import AnonymousPlugin
from kernia.plugins.email_and_password import EmailAndPasswordPlugin
from kernia.plugins.email_otp import EmailOtpPlugin, from_kernias_options
from kernia.plugins.magic_link import OPTION_KEYS as MAGIC_LINK_KEYS
from kernia.plugins.magic_link import MagicLinkPlugin, magic_link
from kernia.plugins.passkey import PasskeyPlugin
from kernia.plugins.username import UsernamePlugin

Headers = Mapping[str, str] | Iterable[tuple[bytes | str, bytes | str]]


def _header_pairs(headers: Any) -> list[tuple[Any, Any]]:
    raw = getattr(headers, "raw", None)  # Starlette's Headers keep the original bytes
    if raw is not None:
        return raw
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


def _check_arg(name: str, value: Any, kind: type) -> None:
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be {kind.__name__}, got {type(value).__name__}")


def _check_page(limit: Any, offset: Any) -> None:
    for name, value in (("limit", limit), ("offset", offset)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"list_users: {name} must be an int")
        if value < 0:
            raise ValueError(f"list_users: {name} must not be negative")


class Router:
    """Serves the auth routes."""

    def __init__(self, native: NativeAuth, sweeper: Sweeper | None = None) -> None:
        self._native = native
        self._app = ASGIApp(native, sweeper)

    def mount(self) -> ASGIApp:
        """The ASGI app: ``app.mount("/api/auth", auth.router.mount())``, or serve it standalone
        (then it answers under ``base_path``)."""
        return self._app


class API:
    """Server-side calls for app code."""

    def __init__(self, native: NativeAuth, guest: AnonymousPlugin | None = None) -> None:
        self._native = native
        self._guest = guest

    async def cleanup_anonymous_users(
        self, dry_run: bool = False, batch_size: int = 1000, max_age: float | None = None
    ) -> dict[str, Any]:
        """Deletes guests inactive for longer than ``max_age`` seconds (default: the
        ``anonymous(max_age=...)`` option) with their sessions, accounts and passkeys, in
        batches of ``batch_size``. ``should_delete(user)`` may keep a guest; ``before_delete(user,
        ctx)`` runs in the transaction that deletes it. Returns the counts ``{"stale", "deleted",
        "kept", "failed", "dry_run"}``; a dry run deletes nothing and counts what it would delete.
        """
        if self._guest is None:
            raise ConfigurationError("cleanup_anonymous_users needs the anonymous() plugin")
        if max_age is None and self._guest.max_age is None:
            raise ConfigurationError(
                "cleanup_anonymous_users needs a max_age: anonymous(max_age=...) or max_age=..."
            )
        for name, value in (("batch_size", batch_size), ("max_age", max_age)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise TypeError(f"cleanup_anonymous_users: {name} must be a number")
            if value is not None and value <= 0:
                raise ValueError(f"cleanup_anonymous_users: {name} must be positive")
        seconds = None if max_age is None else math.ceil(max_age)
        return await self._native.cleanup_anonymous_users(bool(dry_run), int(batch_size), seconds)

    async def list_users(
        self, is_anonymous: bool | None = None, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Users as dicts shaped like the user JSON, newest first; ``is_anonymous=True`` lists
        guests only, ``False`` registered users only."""
        _check_page(limit, offset)
        return await self._native.list_users(is_anonymous, limit, offset)

    async def list_sessions(self, user_id: str) -> list[dict[str, Any]]:
        """The user's unexpired sessions, shaped like ``GET /list-sessions``'s (tokens included)."""
        _check_arg("list_sessions: user_id", user_id, str)
        return await self._native.list_sessions(user_id)

    async def revoke_session(self, token: str) -> bool:
        """Ends the session with this token; whether there was one."""
        _check_arg("revoke_session: token", token, str)
        return await self._native.revoke_session(token)

    async def revoke_sessions(self, user_id: str) -> None:
        """Ends every session of the user (signs it out everywhere)."""
        _check_arg("revoke_sessions: user_id", user_id, str)
        await self._native.revoke_sessions(user_id)

    async def update_user(self, user_id: str, **fields: Any) -> dict[str, Any] | None:
        """Sets ``name`` and/or ``image`` (``image=None`` removes it); returns the updated user,
        or ``None`` when there is no such user."""
        _check_arg("update_user: user_id", user_id, str)
        unknown = sorted(set(fields) - {"name", "image"})
        if unknown:
            raise TypeError(f"update_user: unknown field(s) {', '.join(unknown)}; known: name, image")
        if not fields:
            raise ValueError("update_user: no fields to update (name, image)")
        name, image = fields.get("name"), fields.get("image")
        if "name" in fields:
            _check_arg("update_user: name", name, str)
        if image is not None:
            _check_arg("update_user: image", image, str)
        clear = "image" in fields and image is None
        return await self._native.update_user(user_id, name, image, clear)

    async def delete_user(self, user_id: str) -> bool:
        """Deletes the user with its sessions, accounts and passkeys; whether it existed.
        Rows of the app's own tables are the app's to move or delete."""
        _check_arg("delete_user: user_id", user_id, str)
        return await self._native.delete_user(user_id)

    async def guest_stats(self, since: datetime | float | None = None) -> dict[str, Any]:
        """The guest funnel of the guests created since ``since`` (a ``datetime``, naive meaning
        UTC, or Unix seconds; all guests without it), read from the database, so it counts every
        process and survives restarts: ``created``, ``active`` (guests with a live session now,
        of any age), ``converted`` (by signing in or up to an account), ``converted_by_method``
        (``{"email": n, "username": n, "magic-link": n, "passkey": n, ...}``), ``upgraded`` (in
        place), ``deleted_by_guest``, ``cleaned_up``, ``conversion_rate`` ((converted + upgraded)
        / created, ``None`` without guests) and ``median_seconds_to_conversion``."""
        if since is None:
            since_ms = None
        elif isinstance(since, datetime):
            aware = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
            since_ms = math.floor(aware.timestamp() * 1000)
        elif isinstance(since, int | float) and not isinstance(since, bool) and math.isfinite(since):
            since_ms = math.floor(since * 1000)
        else:
            raise TypeError("guest_stats: since must be a datetime, Unix seconds or None")
        return await self._native.guest_stats(since_ms)

    async def count_users(self, is_anonymous: bool | None = None) -> int:
        """How many users there are (guests only with ``is_anonymous=True``)."""
        return await self._native.count_users(is_anonymous)

    async def get_session(
        self, headers: Headers, *, allow_guests: bool = True, disable_cookie_cache: bool = False
    ) -> dict[str, Any] | None:
        """``{"session": ..., "user": ...}`` for the request's session cookie, or ``None`` when
        signed out. Accepts Starlette/FastAPI ``request.headers``, a dict, or ASGI header pairs.
        With ``allow_guests=False`` a guest's session raises ``kernia.APIError`` 403
        ``GUEST_NOT_ALLOWED``. With the cookie cache on, a valid ``session_data`` cookie answers
        without the database; ``disable_cookie_cache=True`` reads the database (for sensitive
        work: a session revoked elsewhere is refused at once)."""
        _check_arg("get_session: allow_guests", allow_guests, bool)
        _check_arg("get_session: disable_cookie_cache", disable_cookie_cache, bool)
        pairs = _header_pairs(headers)
        # Most checks are answered on this thread, in microseconds, without a trip through
        # the engine's threads; the rest (a refresh to write, PostgreSQL) are awaited.
        found = self._native.get_session_now(pairs, allow_guests, disable_cookie_cache)
        if found is not NotImplemented:
            return found
        return await self._native.get_session(pairs, allow_guests, disable_cookie_cache)


class Server:
    """A native server running in the background (see :meth:`Auth.start_server`)."""

    def __init__(self, native: NativeAuth, host: str, port: int, sweeper: Sweeper | None = None) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._sweeper = sweeper
        if native.has_callbacks or sweeper is not None:
            # Python callbacks are awaited on an event loop of the server's own.
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="kernia-callbacks", daemon=True
            )
            self._thread.start()
        try:
            self._handle = native.start_server(host, port, self._loop)
        except BaseException:
            self._stop_loop()
            raise
        self.host = host
        self.port = self._handle.port
        if sweeper is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(sweeper.ensure_started)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        """Stops accepting, lets in-flight requests finish, then returns."""
        if self._sweeper is not None:
            self._sweeper.stop()
        self._handle.stop()
        self._stop_loop()

    def _stop_loop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
            self._loop = None

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclasses.dataclass(frozen=True)
class AuthContext:
    """What Kernia apps read from ``auth.context``."""

    options: KerniaOptions
    adapter: EngineAdapter


class Auth:
    """The handle :func:`init` returns."""

    def __init__(self, options: KerniaOptions, native: NativeAuth) -> None:
        self.options = options
        self._native = native
        guest = _one(options, AnonymousPlugin, "anonymous")
        self.api = API(native, guest)
        #: The auth database for the app's own SQL (see :mod:`kernia.auth.db`).
        self.db = Database(native.db)
        models = options.database.models if isinstance(options.database, BoundAdapter) else ()
        self._context = AuthContext(options, EngineAdapter(self.db, models))
        interval = guest.cleanup_interval if guest is not None else None
        self._sweeper = Sweeper(self.api.cleanup_anonymous_users, interval) if interval else None
        self.router = Router(native, self._sweeper)
        #: Kernia's ``auth.errors``: the codes of the core and of the plugins in use.
        self.errors = ErrorRegistry()
        for plugin in options.plugins:
            codes = PLUGIN_ERROR_CODES.get(getattr(plugin, "id", ""))
            if codes:
                self.errors.extend(error_codes(codes), plugin_id=plugin.id)

    @property
    def base_path(self) -> str:
        return self._native.base_path

    def metrics_text(self) -> str:
        """The Prometheus text page (``KerniaOptions(metrics=True)``)."""
        text = self._native.metrics_text()
        if text is None:
            raise ConfigurationError("metrics are off: KerniaOptions(metrics=True) turns them on")
        return text

    @property
    def session_cookie_name(self) -> str:
        """The session cookie's name: ``better-auth.session_token``, with
        ``advanced["cookie_prefix"]`` and ``__Secure-`` (https) applied."""
        return self._native.session_cookie_name

    @property
    def context(self) -> AuthContext:
        """Kernia's ``auth.context``: the options ``init()`` was given (``context.options``) and
        Kernia's adapter methods on the engine's tables (``context.adapter``)."""
        return self._context

    def start_server(self, host: str = "127.0.0.1", port: int = 8000) -> Server:
        """Starts the native HTTP server in the background (port 0 picks a free one)."""
        return Server(self._native, host, port, self._sweeper)

    def serve(self, host: str = "127.0.0.1", port: int = 8000) -> None:
        """Serves the auth routes on the native HTTP server until SIGINT or SIGTERM, then
        finishes in-flight requests and closes the database."""
        # The engine catches SIGINT/SIGTERM itself and stops gracefully; Python's own
        # handlers would raise KeyboardInterrupt in the middle of that, so they stand
        # down while serving (installed before the engine's, which chain to them).
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, lambda *_: None)
        try:
            server = self.start_server(host, port)
            try:
                self._native.wait_for_shutdown_signal()
            finally:
                server.stop()
                self.close()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def close(self) -> None:
        """Stops the stale-guest sweeper, commits queued writes and closes the database."""
        if self._sweeper is not None:
            self._sweeper.stop()
        self._native.close()

    def __enter__(self) -> Auth:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_MAGIC_DEFAULTS = {f.name: f.default for f in dataclasses.fields(MagicLinkPlugin)}

_PLUGINS = (
    AnonymousPlugin,
    EmailAndPasswordPlugin,
    UsernamePlugin,
    MagicLinkPlugin,
    PasskeyPlugin,
    EmailOtpPlugin,
)


def _one(options: KerniaOptions, kind: type, name: str) -> Any:
    """The plugin of this kind, if given (at most once)."""
    found = [p for p in options.plugins if isinstance(p, kind)]
    if len(found) > 1:
        raise ConfigurationError(f"the {name} plugin is given more than once")
    return found[0] if found else None


def _magic_link(options: KerniaOptions) -> tuple[MagicLinkPlugin | None, dict[str, Any]]:
    """The magic-link plugin with its sender, also when configured Kernia's way in
    ``advanced["magic-link"]``; and ``advanced`` without that entry."""
    advanced = dict(options.advanced)
    legacy = advanced.pop("magic-link", None)
    plugin = _one(options, MagicLinkPlugin, "magic_link")
    if plugin is None:
        if legacy is not None:
            raise ConfigurationError(
                'KerniaOptions.advanced["magic-link"] is set but magic_link() is not in plugins: '
                "add it to turn magic links on"
            )
        return None, advanced
    if legacy is not None:
        if not isinstance(legacy, Mapping):
            raise TypeError('KerniaOptions.advanced["magic-link"] must be a dict')
        unknown = sorted(set(legacy) - set(MAGIC_LINK_KEYS))
        if unknown:
            raise ConfigurationError(
                f'KerniaOptions.advanced["magic-link"]: unknown option(s) {", ".join(unknown)}; '
                f"known: {', '.join(MAGIC_LINK_KEYS)}"
            )
        fields = {f.name: getattr(plugin, f.name) for f in dataclasses.fields(plugin)}
        given = {k: v for k, v in fields.items() if v != _MAGIC_DEFAULTS[k]}
        for key, value in legacy.items():
            if key in given and given[key] != value:
                raise ConfigurationError(
                    f"magic link option {key} is given twice with different values: in magic_link() "
                    'and in KerniaOptions.advanced["magic-link"]'
                )
        merged = {**fields, **legacy, **given}
        # Checked like the plugin's own arguments.
        plugin = magic_link(merged.pop("send_magic_link"), **merged)
    if not callable(plugin.send_magic_link):
        raise ConfigurationError(
            "magic_link() needs send_magic_link(email, url, token, ctx): pass it to magic_link()"
        )
    return plugin, advanced


_COOKIE_ATTRIBUTE_KEYS = {
    "same_site": "same_site",
    "sameSite": "same_site",
    "secure": "secure",
    "http_only": "http_only",
    "httpOnly": "http_only",
    "domain": "domain",
    "path": "path",
    "partitioned": "partitioned",
}


def _kernia_advanced(advanced: dict[str, Any]) -> str | None:
    """Kernia's spellings in ``advanced`` as the engine takes them (in place): the
    cookie attributes in either case; ``app_name`` taken out and returned."""
    given = [k for k in ("default_cookie_attributes", "defaultCookieAttributes") if k in advanced]
    if len(given) > 1:
        raise ConfigurationError(
            "KerniaOptions.advanced: default_cookie_attributes is given twice "
            "(also as defaultCookieAttributes)"
        )
    if given:
        attrs = advanced.pop(given[0])
        if not isinstance(attrs, Mapping):
            raise TypeError("KerniaOptions.advanced.default_cookie_attributes must be a dict")
        unknown = sorted(set(attrs) - set(_COOKIE_ATTRIBUTE_KEYS))
        if unknown:
            raise ConfigurationError(
                "KerniaOptions.advanced.default_cookie_attributes: unknown attribute(s) "
                f"{', '.join(unknown)}; known: same_site, secure, http_only, domain, path, partitioned "
                "(Max-Age is the session's)"
            )
        same_site = attrs.get("same_site", attrs.get("sameSite"))
        normal = {_COOKIE_ATTRIBUTE_KEYS[k]: v for k, v in attrs.items()}
        if isinstance(same_site, str):
            normal["same_site"] = same_site.lower()
        advanced["default_cookie_attributes"] = normal
    app_name = advanced.pop("app_name", None)
    if app_name is not None and not isinstance(app_name, str):
        raise TypeError("KerniaOptions.advanced.app_name must be a string")
    return app_name


def _email_otp(options: KerniaOptions, advanced: dict[str, Any]) -> EmailOtpPlugin | None:
    """The email-OTP plugin, also when configured Kernia's way in ``advanced["email-otp"]``
    (taken out of ``advanced``); it needs a sender one way or the other."""
    plugin = _one(options, EmailOtpPlugin, "email_otp")
    given = advanced.pop("email-otp", None)
    if plugin is None:
        if given is not None:
            raise ConfigurationError(
                'KerniaOptions.advanced["email-otp"] is set but email_otp() is not in plugins: '
                "add it to turn email codes on"
            )
        return None
    if given is not None:
        plugin = from_kernias_options(plugin, given)
    if plugin.send_verification_otp is None:
        raise ConfigurationError(
            "email_otp() needs send_verification_otp(data, ctx): pass it to email_otp() "
            '(or send_otp in KerniaOptions.advanced["email-otp"])'
        )
    return plugin


def _check_plugins(options: KerniaOptions) -> None:
    for plugin in options.plugins:
        if not isinstance(plugin, _PLUGINS):
            raise TypeError(f"KerniaOptions.plugins: {plugin!r} is not a kernia plugin")


def _email_password(options: KerniaOptions) -> EmailPasswordOptions:
    plugin = _one(options, EmailAndPasswordPlugin, "email_and_password")
    return options.email_and_password if plugin is None else plugin.merged(options.email_and_password)


def _rule(rule: RateLimitRule | None) -> dict[str, int] | None:
    return None if rule is None else {"window": rule.window, "max": rule.max}


def _check_type(name: str, value: Any, kind: type | tuple[type, ...]) -> None:
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise TypeError(f"KerniaOptions.{name} must be {expected}, got {type(value).__name__}")


#: The account routes' callbacks: where each is set, and the name the engine knows it by.
_ACCOUNT_CALLBACKS = {
    "email_and_password": {
        "send_reset_password": "send_reset_password",
        "on_password_reset": "on_password_reset",
    },
    "email_verification": {
        "send_verification_email": "send_verification_email",
        "before_email_verification": "before_email_verification",
        "after_email_verification": "after_email_verification",
    },
    "user.change_email": {"send_change_email_confirmation": "send_change_email_confirmation"},
    "user.delete_user": {
        "send_delete_account_verification": "send_delete_account_verification",
        "before_delete": "before_delete_user",
        "after_delete": "after_delete_user",
    },
}

_NESTED = {
    "session": kinds.SessionOptions,
    "email_verification": kinds.EmailVerificationOptions,
    "user": kinds.UserOptions,
    "user.change_email": kinds.ChangeEmailOptions,
    "user.delete_user": kinds.DeleteUserOptions,
    "account": kinds.AccountOptions,
    "account.account_linking": kinds.AccountLinkingOptions,
    "verification": kinds.VerificationOptions,
}


_SCHEMA = "the engine keeps Better Auth's table and column names; keep extra data in the app's own tables"
_NO_OAUTH = "there are no OAuth providers here"

#: Kernia's spellings of what this server does not have: each must keep its default, or
#: ``init()`` names it with the reason. Taken out of what the engine is given.
_UNSUPPORTED = {
    "social_providers": _NO_OAUTH,
    "database_hooks": "database hooks are not available (the plugins' callbacks are: on_link...)",
    "additional_fields": "extra columns are not available; keep extra data in the app's own tables",
    "account.encrypt_oauth_tokens": f"no OAuth tokens are stored: {_NO_OAUTH}",
    "account.account_linking.enabled": f"it links OAuth accounts: {_NO_OAUTH}",
    "account.account_linking.trusted_providers": _NO_OAUTH,
    "account.account_linking.allow_different_emails": _NO_OAUTH,
    **{
        f"{model}.{name}": _SCHEMA
        for model in ("session", "user", "account", "verification")
        for name in ("model_name", "fields", "additional_fields")
    },
}
#: Accepted with any value: sessions and verification rows are always in the database.
_ALWAYS_IN_DATABASE = ("session.store_session_in_database", "verification.store_in_database")
#: Fields the engine is not given.
_KERNIA_ONLY = frozenset((*_UNSUPPORTED, *_ALWAYS_IN_DATABASE))


def _field_default(obj: Any, name: str) -> Any:
    f = next(f for f in dataclasses.fields(obj) if f.name == name)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]


def _refuse_unsupported(options: KerniaOptions) -> None:
    for path, reason in _UNSUPPORTED.items():
        parent, _, name = path.rpartition(".")
        owner = _at(options, parent) if parent else options
        value = getattr(owner, name)
        if value != _field_default(owner, name) and not (name == "additional_fields" and not value):
            raise ConfigurationError(f"KerniaOptions.{path} is not supported: {reason}")


def _at(options: KerniaOptions, path: str) -> Any:
    value: Any = options
    for part in path.split("."):
        value = getattr(value, part)
    return value


def _plain(obj: Any, path: str, callables: dict[str, Any]) -> dict[str, Any]:
    """A nested options object as JSON-ready values; its functions go to ``callables``."""
    functions = _ACCOUNT_CALLBACKS.get(path, {})
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f"{path}.{f.name}" in _KERNIA_ONLY:
            continue
        if f.name in functions:
            if value is not None and not callable(value):
                raise TypeError(
                    f"KerniaOptions.{path}.{f.name} must be a function, got {type(value).__name__}"
                )
            callables[functions[f.name]] = value
        elif dataclasses.is_dataclass(value):
            out[f.name] = _plain(value, f"{path}.{f.name}", callables)
        else:
            out[f.name] = value
    return out


def _kernia_verification_sender(sender: Any) -> Any:
    """Kernia 0.1.0's ``advanced["send_verification_email"]``, called
    ``sender(email=, token=, callback_url=)``, as a ``send_verification_email``."""
    if not callable(sender):
        raise TypeError('KerniaOptions.advanced["send_verification_email"] must be a function')

    async def send(data: dict[str, Any], ctx: Any) -> None:
        from urllib.parse import parse_qs, urlsplit

        callback = parse_qs(urlsplit(data["url"]).query).get("callbackURL", ["/"])[0]
        result = sender(email=data["user"]["email"], token=data["token"], callback_url=callback)
        if hasattr(result, "__await__"):
            await result

    return send


def _account_options(
    options: KerniaOptions, email_password: EmailPasswordOptions, advanced: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The account routes' options as JSON-ready parts of the payload, and their callbacks."""
    callables: dict[str, Any] = {}
    parts = {
        "email_and_password": _plain(email_password, "email_and_password", callables),
        "email_verification": _plain(options.email_verification, "email_verification", callables),
        "user": _plain(options.user, "user", callables),
        "account": _plain(options.account, "account", callables),
        "verification": _plain(options.verification, "verification", callables),
    }
    legacy = advanced.pop("send_verification_email", None)
    if legacy is not None:
        if callables.get("send_verification_email") is not None:
            raise ConfigurationError(
                "send_verification_email is given twice: in KerniaOptions.email_verification and in "
                'KerniaOptions.advanced["send_verification_email"]; set it in one place'
            )
        callables["send_verification_email"] = _kernia_verification_sender(legacy)
    return parts, callables


def _sqlalchemy_engine(database: Any) -> bool:
    """Whether ``database`` is a SQLAlchemy ``Engine`` or ``AsyncEngine``."""
    module = type(database).__module__
    return module.startswith("sqlalchemy.") and hasattr(database, "url") and hasattr(database, "dialect")


def _database_url(database: Any) -> str:
    """The engine's database URL for ``KerniaOptions.database``: a URL as given, or the
    database behind one of Kernia's adapters or a SQLAlchemy engine."""
    if isinstance(database, str):
        return database
    if isinstance(database, BoundAdapter):
        return database.database_url()
    if _sqlalchemy_engine(database):
        from kernia_sqlalchemy.adapter import engine_database_url

        return engine_database_url(database.url)
    raise TypeError(
        "KerniaOptions.database must be a database URL (sqlite:///app.db, postgresql://...), "
        "kernia_memory_adapter.memory_adapter(), a kernia_sqlalchemy adapter or a SQLAlchemy engine; "
        f"got {type(database).__name__}"
    )


def _secondary_storage_url(storage: Any) -> str | None:
    """Redis's URL for ``KerniaOptions.secondary_storage``: a ``redis://`` URL as given, or
    where a ``kernia_redis_storage.RedisStorage`` (or a ``redis`` client) points."""
    if storage is None or isinstance(storage, str):
        return storage
    client = getattr(storage, "client", storage)
    url = getattr(storage, "url", None)
    if client is None and isinstance(url, str):
        return url
    pool = getattr(client, "connection_pool", None)
    settings = getattr(pool, "connection_kwargs", None)
    if not isinstance(settings, dict):
        raise ConfigurationError(
            "KerniaOptions.secondary_storage must be a Redis URL (redis://host:6379/0) or "
            "kernia_redis_storage.RedisStorage; a storage written in Python is not supported "
            f"(every session check would call it), got {type(storage).__name__}"
        )
    connection = getattr(getattr(pool, "connection_class", None), "__name__", "")
    if settings.get("path") or "SSL" in connection or "Unix" in connection:
        raise ConfigurationError(
            "KerniaOptions.secondary_storage: only Redis over TCP without TLS is supported (redis://host:port/db)"
        )
    from urllib.parse import quote

    user, password = settings.get("username"), settings.get("password")
    auth = ""
    if user or password:
        auth = f"{quote(user or '', safe='')}:{quote(password or '', safe='')}@"
    host = settings.get("host", "localhost")
    return f"redis://{auth}{host}:{settings.get('port', 6379)}/{settings.get('db', 0)}"


def _check_rate_limit_store(store: Any) -> None:
    from kernia.auth.rate_limit import InMemoryRateLimitStore

    if store is not None and not isinstance(store, InMemoryRateLimitStore):
        raise ConfigurationError(
            f"KerniaOptions.rate_limit_store: {type(store).__name__} is not supported; the engine keeps "
            "its buckets itself: InMemoryRateLimitStore() (the default, per process), or "
            'RateLimitOptions(storage="database") to share them between processes'
        )


def _to_json(
    options: KerniaOptions, plugins: list[Any], advanced: dict[str, Any], account_parts: dict[str, Any]
) -> str:
    _check_rate_limit_store(options.rate_limit_store)
    _check_type("base_url", options.base_url, str)
    _check_type("base_path", options.base_path, str)
    _check_type("metrics", options.metrics, bool)
    _check_type("metrics_path", options.metrics_path, str)
    secret = options.secret
    if secret is None:
        secret = os.environ.get("KERNIA_SECRET") or os.environ.get("BETTER_AUTH_SECRET")
    if secret is not None:
        _check_type("secret", secret, str)
    for name in ("trusted_origins", "cors_origins"):
        if isinstance(getattr(options, name), str):
            raise TypeError(f"KerniaOptions.{name} must be a list of origins, not a string")
    rate_limit = dataclasses.asdict(options.rate_limit)
    rate_limit["custom_rules"] = [
        [path, _rule(rule)] for path, rule in options.rate_limit.custom_rules.items()
    ]
    redis_url = _secondary_storage_url(options.secondary_storage)
    if redis_url is not None and rate_limit["storage"] == "memory":
        # Better Auth's default with a secondary storage: every process counts together.
        rate_limit["storage"] = "secondary-storage"
    payload = {
        "database": _database_url(options.database),
        "secondary_storage": redis_url,
        "secret": secret,
        "base_url": options.base_url,
        "base_path": options.base_path,
        "trusted_origins": list(options.trusted_origins),
        "cors_origins": list(options.cors_origins),
        "metrics": options.metrics,
        "metrics_path": options.metrics_path,
        "session": _plain(options.session, "session", {}),
        "rate_limit": rate_limit,
        "advanced": advanced,
        **account_parts,
    }
    for plugin in plugins:
        payload[options_key(plugin)] = plugin.options()
    try:
        return json.dumps(payload)
    except TypeError as e:
        raise ConfigurationError(f"options must be plain values: {e}") from None


def init(options: KerniaOptions) -> Auth:
    """Validates the options, opens (and migrates) the database and returns the handle.

    Raises :class:`kernia.ConfigurationError` for options that cannot work (no secret, an unknown
    database scheme, a database that cannot be opened or reached) and ``TypeError`` for values of
    the wrong type.
    """
    if not isinstance(options, KerniaOptions):
        raise TypeError(f"init() takes KerniaOptions, got {type(options).__name__}")
    _check_type("advanced", options.advanced, dict)
    if isinstance(options.user, kinds.ModelConfig):
        # Kernia's ``user`` is a ModelConfig: the same schema fields, no account options.
        options = dataclasses.replace(options, user=kinds.UserOptions(**dataclasses.asdict(options.user)))
    _check_plugins(options)
    for path, kind in _NESTED.items():
        value = _at(options, path)
        if not isinstance(value, kind):
            raise TypeError(f"KerniaOptions.{path} must be {kind.__name__}, got {type(value).__name__}")
    _refuse_unsupported(options)
    magic, advanced = _magic_link(options)
    otp = _email_otp(options, advanced)
    app_name = _kernia_advanced(advanced)
    passkeys = _one(options, PasskeyPlugin, "passkey")
    if passkeys is not None and passkeys.rp_name is None and app_name is not None:
        # Better Auth's passkeys show the app's name (``appName``) unless given their own.
        passkeys = dataclasses.replace(passkeys, rp_name=app_name)
    # Every plugin the same way: its options under its key, its functions by name.
    plugins = [
        _one(options, AnonymousPlugin, "anonymous"),
        _one(options, UsernamePlugin, "username"),
        magic,
        passkeys,
        otp,
    ]
    plugins = [p for p in plugins if p is not None]
    callables: dict[str, Any] = {}
    for plugin in plugins:
        callables.update(plugin.callables())
    account_parts, account_callables = _account_options(options, _email_password(options), advanced)
    callables.update(account_callables)
    native = NativeAuth(_to_json(options, plugins, advanced, account_parts), callables)
    auth = Auth(options, native)
    native._attach(auth)
    if isinstance(options.database, BoundAdapter):
        options.database._attach(auth.context.adapter)
    return auth


#: Kernia's name for the handle ``init()`` returns.
Kernia = Auth

__all__ = ["API", "Auth", "AuthContext", "Kernia", "Router", "Server", "init"]
