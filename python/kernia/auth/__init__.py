"""``init(options)``: builds the engine and returns the handle an app uses."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from kernia._native import NativeAuth
from kernia.auth.asgi import ASGIApp
from kernia.errors import ConfigurationError
from kernia.options import EmailPasswordOptions, KerniaOptions, RateLimitRule
from kernia.plugins.anonymous import AnonymousPlugin
from kernia.plugins.email_and_password import EmailAndPasswordPlugin

Headers = Mapping[str, str] | Iterable[tuple[bytes | str, bytes | str]]


def _header_pairs(headers: Any) -> list[tuple[Any, Any]]:
    raw = getattr(headers, "raw", None)  # Starlette's Headers keep the original bytes
    if raw is not None:
        return list(raw)
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


class Router:
    """Serves the auth routes."""

    def __init__(self, native: NativeAuth) -> None:
        self._native = native
        self._app = ASGIApp(native)

    def mount(self) -> ASGIApp:
        """The ASGI app: ``app.mount("/api/auth", auth.router.mount())``, or serve it standalone
        (then it answers under ``base_path``)."""
        return self._app


class API:
    """Server-side calls for app code."""

    def __init__(self, native: NativeAuth) -> None:
        self._native = native

    async def get_session(self, headers: Headers) -> dict[str, Any] | None:
        """``{"session": ..., "user": ...}`` for the request's session cookie, or ``None`` when
        signed out. Accepts Starlette/FastAPI ``request.headers``, a dict, or ASGI header pairs."""
        text = await self._native.get_session(_header_pairs(headers))
        return None if text is None else json.loads(text)


class Auth:
    """The handle :func:`init` returns."""

    def __init__(self, options: KerniaOptions, native: NativeAuth) -> None:
        self.options = options
        self._native = native
        self.router = Router(native)
        self.api = API(native)

    @property
    def base_path(self) -> str:
        return self._native.base_path

    def close(self) -> None:
        """Commits queued writes and closes the database."""
        self._native.close()


def _email_password(options: KerniaOptions) -> EmailPasswordOptions:
    known = (AnonymousPlugin, EmailAndPasswordPlugin)
    for plugin in options.plugins:
        if not isinstance(plugin, known):
            raise TypeError(f"KerniaOptions.plugins: {plugin!r} is not a kernia plugin")
    for plugin in options.plugins:
        if isinstance(plugin, EmailAndPasswordPlugin):
            return plugin.options
    return options.email_and_password


def _rule(rule: RateLimitRule | None) -> dict[str, int] | None:
    return None if rule is None else {"window": rule.window, "max": rule.max}


def _check_type(name: str, value: Any, kind: type | tuple[type, ...]) -> None:
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise TypeError(f"KerniaOptions.{name} must be {expected}, got {type(value).__name__}")


def _to_json(options: KerniaOptions) -> str:
    _check_type("database", options.database, str)
    _check_type("base_url", options.base_url, str)
    _check_type("base_path", options.base_path, str)
    _check_type("advanced", options.advanced, dict)
    secret = options.secret
    if secret is None:
        secret = os.environ.get("KERNIA_SECRET") or os.environ.get("BETTER_AUTH_SECRET")
    if secret is not None:
        _check_type("secret", secret, str)
    if isinstance(options.trusted_origins, str):
        raise TypeError("KerniaOptions.trusted_origins must be a list of origins, not a string")
    rate_limit = dataclasses.asdict(options.rate_limit)
    rate_limit["custom_rules"] = [
        [path, _rule(rule)] for path, rule in options.rate_limit.custom_rules.items()
    ]
    payload = {
        "database": options.database,
        "secret": secret,
        "base_url": options.base_url,
        "base_path": options.base_path,
        "trusted_origins": list(options.trusted_origins),
        "email_and_password": dataclasses.asdict(_email_password(options)),
        "session": dataclasses.asdict(options.session),
        "rate_limit": rate_limit,
        "advanced": options.advanced,
    }
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
    guests = [p for p in options.plugins if isinstance(p, AnonymousPlugin)]
    if len(guests) > 1:
        raise ConfigurationError("the anonymous plugin is given more than once")
    native = NativeAuth(_to_json(options), guests[0] if guests else None)
    auth = Auth(options, native)
    native._attach(auth)
    return auth


__all__ = ["API", "Auth", "Router", "init"]
