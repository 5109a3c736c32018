"""Kernia's option objects, with Kernia's field names and defaults."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class EmailPasswordOptions:
    """Email and password sign-in. Mirrors Better Auth's ``emailAndPassword``."""

    enabled: bool = False
    disable_sign_up: bool = False
    require_email_verification: bool = False
    min_password_length: int = 8
    max_password_length: int = 128
    auto_sign_in: bool = True


@dataclass
class SessionOptions:
    """Session lifetime, in seconds."""

    expires_in: int = 60 * 60 * 24 * 7
    #: How old the last refresh must be before get-session extends the session; 0 refreshes every time.
    update_age: int = 60 * 60 * 24
    disable_session_refresh: bool = False
    #: How recent a sign-in must be for endpoints that need a fresh session; 0 disables the check.
    fresh_age: int = 60 * 60 * 24


@dataclass(frozen=True)
class RateLimitRule:
    """At most ``max`` requests per ``window`` seconds."""

    window: int
    max: int


@dataclass
class RateLimitOptions:
    """The global rate limit: per client IP and path (Better Auth's rules for sign-in/sign-up apply)."""

    enabled: bool = True
    window: int = 60
    max: int = 100
    storage: str = "memory"
    #: Path (exact, or ending in ``*``) -> rule, or ``None`` to turn limiting off for it.
    custom_rules: Mapping[str, RateLimitRule | None] = field(default_factory=dict)


@dataclass
class KerniaOptions:
    """The one options object an app passes to :func:`kernia.auth.init`.

    ``database`` is a URL: ``sqlite:///relative/app.db``, ``sqlite:////absolute/app.db``,
    ``sqlite::memory:``, or ``postgresql://user@host/db``. ``secret`` signs cookies; when it is
    ``None`` the ``KERNIA_SECRET`` (or ``BETTER_AUTH_SECRET``) environment variable is used.
    """

    database: str
    secret: str | None = None
    base_url: str = "http://localhost:3000"
    base_path: str = "/api/auth"
    trusted_origins: Sequence[str] = ()
    email_and_password: EmailPasswordOptions = field(default_factory=EmailPasswordOptions)
    session: SessionOptions = field(default_factory=SessionOptions)
    rate_limit: RateLimitOptions = field(default_factory=RateLimitOptions)
    plugins: Sequence[Any] = ()
    #: ``cookie_prefix``, ``use_secure_cookies``, ``disable_csrf_check``, ``disable_origin_check``,
    #: ``trusted_proxies``, ``max_body_size``, ``database_pool_size``, ``database_timeout``,
    #: ``request_timeout``, ``max_connections`` (see the README's "Limits and faults").
    advanced: dict[str, Any] = field(default_factory=dict)
