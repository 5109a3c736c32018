"""Guest sessions: sign in without credentials, become a real account later.

``anonymous(on_link=None, *, email_domain_name=None, generate_name=None,
generate_random_email=None, disable_delete_anonymous_user=False, allow_linking=True,
expires_in=None, rate_limit=None, max_age=None, should_delete=None, before_delete=None,
on_event=None, cleanup_interval=None)``; arguments of the wrong type raise ``TypeError``
and values the engine refuses ``ConfigurationError`` (a ``ValueError``) right here.

``on_link(anonymous_user, new_user, ctx)`` (async or plain) runs when a guest signs up
or signs in to a real account. The two users are dicts shaped like the user JSON.
``ctx.request`` holds the method, path, headers and client IP; ``ctx.auth`` is the
handle ``init()`` returned; ``ctx.db`` runs SQL on the auth database inside the
conversion's own transaction (``await ctx.db.execute(sql, params)``,
``await ctx.db.fetch_all(sql, params)``, ``await ctx.db.fetch_one(sql, params)``), so
app tables in the same database move together with the conversion, or not at all.

Lifecycle options:

- ``allow_linking=False``: guests stay guests; ``/anonymous/upgrade``, ``/anonymous/link`` answer
  403 and signing in from a guest session neither calls ``on_link`` nor deletes the guest.
- ``expires_in``: seconds a guest session lives (default: ``session.expires_in``).
- ``rate_limit``: ``RateLimitRule(window, max)`` for ``/sign-in/anonymous`` per client IP
  (default 10 per 60 s), or ``False`` for none.
- ``max_age``: seconds of inactivity after which ``auth.api.cleanup_anonymous_users()`` and
  ``kernia cleanup-anonymous`` delete a guest; ``cleanup_interval`` runs that every so many
  seconds in-process. ``should_delete(user)`` may keep a guest; ``before_delete(user, ctx)`` runs
  in the deleting transaction with ``ctx.db``.
- ``reuse_existing=True``: ``/sign-in/anonymous`` from a browser that already holds a live
  guest session answers that same guest and session (200) instead of 400
  ``ANONYMOUS_USERS_CANNOT_SIGN_IN_AGAIN_ANONYMOUSLY``.
- ``resume=True``: a new guest's sign-in answer carries a ``resumeToken`` too (kept hashed,
  lasting ``max_age``, or a year); ``POST /anonymous/resume {"resumeToken"}`` gives a new
  session for the same guest and a new token (the old one is spent). Once the guest is gone
  (converted by a sign-in, deleted, cleaned up) it answers 401 ``INVALID_RESUME_TOKEN``;
  once upgraded in place, 403 ``GUEST_ALREADY_CONVERTED``. Rate-limited like guest creation.
- ``before_create(ctx)`` (sync or async) runs before a guest is created, with
  ``ctx.request`` (headers, ``client_ip``, and ``body``: the JSON the client sent); raising
  ``kernia.APIError`` refuses the sign-in with that error and nothing is written (check a
  CAPTCHA or device-attestation token here).
- ``on_event(event)``: a dict ``{"type", "user_id", "new_user_id", "time", "ip", "path"}`` for
  each guest ``created``, ``linked``, ``upgraded``, ``deleted``, ``cleaned_up`` and each
  ``rate_limited`` request; it runs on its own, and its failures are logged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kernia._native import CallbackContext, ConversionDatabase
from kernia.error import PLUGIN_ERROR_CODES, error_codes
from kernia.plugins._check import checked, flag, function, seconds, whole_seconds
from kernia.types.adapter import FieldDef

#: The column the plugin adds to ``user`` (Kernia's name for it), for apps that build
#: the schema of their own SQLAlchemy metadata.
_ANONYMOUS_USER_FIELDS = (FieldDef("isAnonymous", "boolean", required=False, default=False),)

_CALLBACKS = (
    "on_link",
    "before_create",
    "generate_name",
    "generate_random_email",
    "should_delete",
    "before_delete",
    "on_event",
)


#: The codes the plugin answers with: ``{code: message}`` (Kernia's table).
ANONYMOUS_ERROR_CODES = error_codes(PLUGIN_ERROR_CODES["anonymous"])


@dataclass(frozen=True)
class AnonymousPlugin:
    id = "anonymous"
    on_link: Callable[..., Any] | None = None
    email_domain_name: str | None = None
    generate_name: Callable[..., Any] | None = None
    generate_random_email: Callable[..., Any] | None = None
    disable_delete_anonymous_user: bool = False
    allow_linking: bool = True
    expires_in: float | None = None
    #: ``RateLimitRule(window, max)``, ``None`` for the default, ``False`` for no limit.
    rate_limit: Any = None
    max_age: float | None = None
    should_delete: Callable[..., Any] | None = None
    before_delete: Callable[..., Any] | None = None
    on_event: Callable[..., Any] | None = None
    cleanup_interval: float | None = None
    reuse_existing: bool = False
    resume: bool = False
    before_create: Callable[..., Any] | None = None

    def options(self) -> dict[str, Any]:
        """The plain options, as the engine reads them."""
        found: dict[str, Any] = {
            "email_domain_name": self.email_domain_name,
            "disable_delete_anonymous_user": self.disable_delete_anonymous_user,
            "allow_linking": self.allow_linking,
            "expires_in": whole_seconds(self.expires_in),
            "max_age": whole_seconds(self.max_age),
            "cleanup_interval": self.cleanup_interval,
            "reuse_existing": self.reuse_existing,
            "resume": self.resume,
        }
        if self.rate_limit is False:
            found["rate_limit"] = None
        elif self.rate_limit not in (None, True):
            found["rate_limit"] = {"window": self.rate_limit.window, "max": self.rate_limit.max}
        return found

    def callables(self) -> dict[str, Callable[..., Any]]:
        """The configured callbacks by name."""
        return {name: f for name in _CALLBACKS if (f := getattr(self, name)) is not None}


def _rate_limit(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    fields = [getattr(value, name, None) for name in ("window", "max")]
    if not all(isinstance(f, int) and not isinstance(f, bool) for f in fields):
        raise TypeError("anonymous(): rate_limit must be RateLimitRule(window=..., max=...) or False")
    return value


def anonymous(
    on_link: Callable[[dict[str, Any], dict[str, Any], CallbackContext], Any] | None = None,
    *,
    email_domain_name: str | None = None,
    generate_name: Callable[[CallbackContext], Any] | None = None,
    generate_random_email: Callable[[], Any] | None = None,
    disable_delete_anonymous_user: bool | None = None,
    allow_linking: bool | None = None,
    expires_in: float | None = None,
    rate_limit: Any = None,
    max_age: float | None = None,
    should_delete: Callable[[dict[str, Any]], Any] | None = None,
    before_delete: Callable[[dict[str, Any], CallbackContext], Any] | None = None,
    on_event: Callable[[dict[str, Any]], Any] | None = None,
    cleanup_interval: float | None = None,
    reuse_existing: bool | None = None,
    resume: bool | None = None,
    before_create: Callable[[CallbackContext], Any] | None = None,
) -> AnonymousPlugin:
    """Turns on ``POST /sign-in/anonymous``, ``POST /delete-anonymous-user``,
    ``POST /anonymous/upgrade`` and ``POST /anonymous/link`` (and ``POST /anonymous/resume``
    with ``resume=True``), and guest conversion on every sign-in."""
    name = "anonymous"
    if email_domain_name is not None and not isinstance(email_domain_name, str):
        raise TypeError('anonymous(): email_domain_name must be a str such as "guests.example.com"')
    functions = {
        "on_link": on_link,
        "generate_name": generate_name,
        "generate_random_email": generate_random_email,
        "should_delete": should_delete,
        "before_delete": before_delete,
        "on_event": on_event,
        "before_create": before_create,
    }
    return checked(
        AnonymousPlugin(
            email_domain_name=email_domain_name,
            disable_delete_anonymous_user=flag(
                name, "disable_delete_anonymous_user", disable_delete_anonymous_user, False
            ),
            allow_linking=flag(name, "allow_linking", allow_linking, True),
            expires_in=seconds(name, "expires_in", expires_in),
            rate_limit=_rate_limit(rate_limit),
            max_age=seconds(name, "max_age", max_age),
            cleanup_interval=seconds(name, "cleanup_interval", cleanup_interval),
            reuse_existing=flag(name, "reuse_existing", reuse_existing, False),
            resume=flag(name, "resume", resume, False),
            **{key: function(name, key, f) for key, f in functions.items()},
        )
    )


__all__ = ["ANONYMOUS_ERROR_CODES", "AnonymousPlugin", "CallbackContext", "ConversionDatabase", "anonymous"]
