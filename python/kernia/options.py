"""Kernia's option objects, with Kernia's field names and defaults."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: A mail sender: ``send(data, ctx)`` with ``data = {"user", "url", "token"}``; may be async.
Sender = Callable[..., Any]


@dataclass
class EmailPasswordOptions:
    """Email and password sign-in. Mirrors Better Auth's ``emailAndPassword``."""

    enabled: bool = False
    disable_sign_up: bool = False
    require_email_verification: bool = False
    min_password_length: int = 8
    max_password_length: int = 128
    auto_sign_in: bool = True
    #: ``send_reset_password({"user", "url", "token"}, ctx)`` mails a reset link; without it
    #: ``/request-password-reset`` answers 400 ``RESET_PASSWORD_DISABLED``.
    send_reset_password: Sender | None = None
    #: Seconds a reset link stays valid.
    reset_password_token_expires_in: int = 3600
    #: A password reset signs the user out everywhere.
    revoke_sessions_on_password_reset: bool = False
    #: ``on_password_reset({"user": user}, ctx)`` after a reset.
    on_password_reset: Callable[..., Any] | None = None


@dataclass
class ModelConfig:
    """Kernia's schema overrides of a model. The engine keeps Better Auth's tables and
    columns, so only the defaults are accepted: ``init()`` names any other value."""

    model_name: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    additional_fields: Sequence[Any] = ()


@dataclass
class SessionOptions:
    """Session lifetime, in seconds."""

    expires_in: int = 60 * 60 * 24 * 7
    #: How old the last refresh must be before get-session extends the session; 0 refreshes every time.
    update_age: int = 60 * 60 * 24
    disable_session_refresh: bool = False
    #: How recent a sign-in must be for endpoints that need a fresh session; 0 disables the check.
    fresh_age: int = 60 * 60 * 24
    #: Better Auth's cookie cache: a signed ``session_data`` cookie carries the session and
    #: user, so get-session and the app's session checks answer without the database. A
    #: session revoked elsewhere stays usable there until its cookie is this old.
    cookie_cache_enabled: bool = False
    #: Seconds a ``session_data`` cookie is trusted.
    cookie_cache_max_age: int = 60 * 5
    #: Better Auth's ``cookieCache.version``: cookies written under another version are not
    #: used, so changing it sends every cached session back to the database.
    cookie_cache_version: str = "1"
    #: Sessions are always kept in the database, with a copy in Redis when there is a
    #: ``secondary_storage`` (guest conversion needs them in its transaction).
    store_session_in_database: bool = False
    #: Kernia's schema overrides: the engine keeps Better Auth's tables, so ``init()``
    #: names any value but the default.
    model_name: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    additional_fields: Sequence[Any] = ()


@dataclass
class EmailVerificationOptions:
    """Email verification. Mirrors Better Auth's ``emailVerification``."""

    #: ``send_verification_email({"user", "url", "token"}, ctx)`` mails a verification link.
    send_verification_email: Sender | None = None
    #: Mail a link on sign-up; ``None``: when ``require_email_verification`` is on.
    send_on_sign_up: bool | None = None
    #: Mail a fresh link when an unverified user is refused sign-in.
    send_on_sign_in: bool = False
    #: Opening a verification link signs its user in.
    auto_sign_in_after_verification: bool = False
    #: Seconds a verification link stays valid.
    expires_in: int = 3600
    #: ``before_email_verification(user, ctx)`` / ``after_email_verification(user, ctx)``.
    before_email_verification: Callable[..., Any] | None = None
    after_email_verification: Callable[..., Any] | None = None


@dataclass
class ChangeEmailOptions:
    """``POST /change-email``. Mirrors Better Auth's ``user.changeEmail``."""

    enabled: bool = False
    #: ``send_change_email_confirmation({"user", "new_email", "url", "token"}, ctx)``: a verified
    #: user confirms from the old address before the new one gets its verification link.
    send_change_email_confirmation: Sender | None = None
    #: An unverified user's email changes at once, without a link.
    update_email_without_verification: bool = False


@dataclass
class DeleteUserOptions:
    """``POST /delete-user``. Mirrors Better Auth's ``user.deleteUser``."""

    enabled: bool = False
    #: ``send_delete_account_verification({"user", "url", "token"}, ctx)``: deletion waits for
    #: the mailed link; without it the user is deleted at once.
    send_delete_account_verification: Sender | None = None
    #: ``before_delete(user, ctx)`` (raise ``APIError`` to refuse) / ``after_delete(user, ctx)``.
    before_delete: Callable[..., Any] | None = None
    after_delete: Callable[..., Any] | None = None
    #: Seconds a deletion link stays valid.
    delete_token_expires_in: int = 86_400


@dataclass
class UserOptions:
    """Better Auth's ``user``: changing the email and deleting the account. Kernia's
    ``ModelConfig`` is accepted for ``KerniaOptions.user`` too."""

    change_email: ChangeEmailOptions = field(default_factory=ChangeEmailOptions)
    delete_user: DeleteUserOptions = field(default_factory=DeleteUserOptions)
    #: Kernia's schema overrides: the engine keeps Better Auth's tables, so ``init()``
    #: names any value but the default.
    model_name: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    additional_fields: Sequence[Any] = ()


@dataclass
class AccountLinkingOptions:
    #: ``/unlink-account`` may remove a user's last account.
    allow_unlinking_all: bool = False
    #: Kernia's OAuth linking switches. There are no OAuth providers here, so
    #: ``init()`` refuses ``trusted_providers`` and ``allow_different_emails``.
    enabled: bool = False
    trusted_providers: Sequence[str] = ()
    allow_different_emails: bool = False


@dataclass
class AccountOptions:
    """Better Auth's ``account``."""

    account_linking: AccountLinkingOptions = field(default_factory=AccountLinkingOptions)
    #: No OAuth tokens are stored here, so ``init()`` refuses ``True``.
    encrypt_oauth_tokens: bool = False
    #: Kernia's schema overrides: the engine keeps Better Auth's tables, so ``init()``
    #: names any value but the default.
    model_name: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    additional_fields: Sequence[Any] = ()


@dataclass
class VerificationOptions:
    """How the tokens of password-reset and deletion links are kept."""

    #: ``"plain"``, or ``"hashed"`` (SHA-256): a leaked table holds no usable link.
    store_identifier: str = "plain"
    #: Keep expired verification rows instead of deleting them as lookups pass.
    disable_cleanup: bool = False
    #: Verification rows are always kept in the database (there is no secondary storage yet).
    store_in_database: bool = False
    #: Kernia's schema overrides: the engine keeps Better Auth's tables, so ``init()``
    #: names any value but the default.
    model_name: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    additional_fields: Sequence[Any] = ()


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
    ``sqlite::memory:``, or ``postgresql://user@host/db``; or Kernia's ``memory_adapter()``.
    ``secret`` signs cookies; when it is ``None`` the ``KERNIA_SECRET`` (or
    ``BETTER_AUTH_SECRET``) environment variable is used.
    """

    database: Any
    secret: str | None = None
    base_url: str = "http://localhost:3000"
    base_path: str = "/api/auth"
    trusted_origins: Sequence[str] = ()
    #: Origins whose pages call the auth routes from another origin with their cookies,
    #: such as an app on ``http://localhost:3000`` and the native server on port 8000:
    #: their requests and preflights are answered with CORS headers, and each is trusted
    #: like ``trusted_origins``. ``scheme://host[:port]``, exactly as the browser sends it.
    cors_origins: Sequence[str] = ()
    email_and_password: EmailPasswordOptions = field(default_factory=EmailPasswordOptions)
    session: SessionOptions = field(default_factory=SessionOptions)
    rate_limit: RateLimitOptions = field(default_factory=RateLimitOptions)
    email_verification: EmailVerificationOptions = field(default_factory=EmailVerificationOptions)
    user: UserOptions = field(default_factory=UserOptions)
    account: AccountOptions = field(default_factory=AccountOptions)
    verification: VerificationOptions = field(default_factory=VerificationOptions)
    plugins: Sequence[Any] = ()
    #: Kernia's rate-limit store: ``kernia.auth.rate_limit.InMemoryRateLimitStore()`` is the engine's
    #: default; for limits shared between processes use ``RateLimitOptions(storage="database")``.
    rate_limit_store: Any = None
    #: Prometheus metrics (requests and latency by route and status, guests, rate-limit
    #: refusals, database errors), served at ``metrics_path``: under ``base_path`` the auth
    #: routes answer it on every transport; elsewhere the native server does, and an ASGI app
    #: mounts ``kernia.integrations.starlette.metrics_endpoint(auth)`` there.
    metrics: bool = False
    metrics_path: str = "/metrics"
    #: Redis for sessions and rate-limit counters shared by every process: a URL
    #: (``"redis://127.0.0.1:6379/0"``) or ``kernia_redis_storage.RedisStorage``. Session checks
    #: read a copy there; the database stays the source of truth (see docs/serving.md).
    secondary_storage: Any = None
    #: Kernia's spellings of features this server does not have; ``init()`` names any
    #: value but the default: OAuth providers, database hooks, extra columns.
    social_providers: Mapping[str, Any] = field(default_factory=dict)
    database_hooks: Any = None
    additional_fields: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    #: ``cookie_prefix``, ``use_secure_cookies``, ``default_cookie_attributes``, ``app_name``,
    #: ``disable_csrf_check``, ``disable_origin_check``, ``trusted_proxies``, ``max_body_size``,
    #: ``database_pool_size``, ``database_timeout``, ``request_timeout``, ``max_connections``
    #: (see the README's "Limits and faults").
    advanced: dict[str, Any] = field(default_factory=dict)


__all__ = [
    "AccountLinkingOptions",
    "AccountOptions",
    "ChangeEmailOptions",
    "DeleteUserOptions",
    "EmailPasswordOptions",
    "EmailVerificationOptions",
    "KerniaOptions",
    "ModelConfig",
    "RateLimitOptions",
    "RateLimitRule",
    "SessionOptions",
    "UserOptions",
    "VerificationOptions",
]
