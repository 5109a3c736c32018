"""Email one-time codes (Better Auth's email-OTP plugin): sign in (or up), verify an email
and reset a password with a code mailed to the address. A guest who signs in with a code
is converted like on every sign-in, through ``on_link``.

``email_otp(send_verification_otp=None, *, otp_length=6, expires_in=300, allowed_attempts=3,
store_otp="hashed", disable_sign_up=False, rate_limit=None)``

``send_verification_otp(data, ctx)`` (async or plain) mails the code: ``data`` is
``{"email", "otp", "type"}`` with ``type`` one of ``"sign-in"``, ``"email-verification"``,
``"forget-password"``. Kernia's ``send_otp(email, otp, purpose)`` works too (also given as
``email_otp(send_otp=...)``), and so does
Kernia's way of configuring the plugin: ``email_otp()`` with
``KerniaOptions(advanced={"email-otp": {"send_otp": ..., "otp_length": 6, ...}})``.

- ``otp_length``: digits in a code (4 to 12); ``expires_in``: seconds it stays valid.
- ``allowed_attempts``: wrong codes after which it is gone (403 ``TOO_MANY_ATTEMPTS``).
- ``store_otp``: ``"hashed"`` (the default: only the code's SHA-256 is kept) or ``"plain"``.
- ``disable_sign_up``: a code for an unknown email does not create the user.
- ``rate_limit``: ``RateLimitRule(window, max)`` for each of the plugin's routes per client
  IP (default 3 per 60 s, Better Auth's), or ``False`` for none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kernia.error import PLUGIN_ERROR_CODES, error_codes
from kernia.plugins._check import checked, flag, function, integer
from kernia.plugins.magic_link import _positional

#: The keys ``advanced["email-otp"]`` may hold (Kernia's names; ``send_otp`` is the sender).
OPTION_KEYS = ("send_otp", "otp_length", "expires_in", "allowed_attempts", "store_otp", "disable_sign_up")

#: The codes the plugin answers with: ``{code: message}`` (Better Auth's table).
EMAIL_OTP_ERROR_CODES = error_codes(PLUGIN_ERROR_CODES["email-otp"])


@dataclass(frozen=True)
class EmailOtpPlugin:
    id = "email-otp"
    send_verification_otp: Callable[..., Any] | None = None
    otp_length: int = 6
    expires_in: int = 300
    allowed_attempts: int = 3
    store_otp: str = "hashed"
    disable_sign_up: bool = False
    #: ``RateLimitRule(window, max)``, ``None`` for the default, ``False`` for no limit.
    rate_limit: Any = None

    def options(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "otp_length": self.otp_length,
            "expires_in": self.expires_in,
            "allowed_attempts": self.allowed_attempts,
            "store_otp": self.store_otp,
            "disable_sign_up": self.disable_sign_up,
        }
        if self.rate_limit is False:
            found["rate_limit"] = None
        elif self.rate_limit is not None:
            found["rate_limit"] = {"window": self.rate_limit.window, "max": self.rate_limit.max}
        return found

    def callables(self) -> dict[str, Any]:
        if self.send_verification_otp is None:
            return {}
        return {"send_verification_otp": otp_sender(self.send_verification_otp)}


def otp_sender(f: Callable[..., Any]) -> Callable[..., Any]:
    """``f`` as ``(data, ctx)``, also in Kernia's ``(email, otp, purpose)`` form."""
    if _positional(f) == 3:

        def kernias(data: dict[str, Any], ctx: Any) -> Any:
            return f(data["email"], data["otp"], data["type"])

        return kernias
    return f


def email_otp(
    send_verification_otp: Callable[..., Any] | None = None,
    *,
    otp_length: int = 6,
    expires_in: int = 300,
    allowed_attempts: int = 3,
    store_otp: str = "hashed",
    disable_sign_up: bool = False,
    rate_limit: Any = None,
    send_otp: Callable[..., Any] | None = None,
) -> EmailOtpPlugin:
    """Turns on ``/email-otp/*``, ``POST /sign-in/email-otp`` and ``POST /forget-password/email-otp``.
    The sender may be given as ``send_otp=`` too (Kernia's name)."""
    name = "email_otp"
    if send_otp is not None:
        if send_verification_otp is not None:
            raise TypeError("email_otp(): give send_verification_otp or send_otp, not both")
        send_verification_otp = send_otp
    function(name, "send_verification_otp", send_verification_otp)
    for key, value in (
        ("otp_length", otp_length),
        ("expires_in", expires_in),
        ("allowed_attempts", allowed_attempts),
    ):
        integer(name, key, value)
    if store_otp not in ("plain", "hashed"):
        raise ValueError(f'email_otp(): store_otp must be "plain" or "hashed", got {store_otp!r}')
    flag(name, "disable_sign_up", disable_sign_up, False)
    if rate_limit not in (None, False) and not all(
        isinstance(getattr(rate_limit, k, None), int) for k in ("window", "max")
    ):
        raise TypeError("email_otp(): rate_limit must be RateLimitRule(window=..., max=...) or False")
    plugin = EmailOtpPlugin(
        send_verification_otp,
        otp_length,
        expires_in,
        allowed_attempts,
        store_otp,
        disable_sign_up,
        rate_limit,
    )
    return checked(plugin)


def from_kernias_options(plugin: EmailOtpPlugin, given: Any) -> EmailOtpPlugin:
    """The plugin with Kernia's ``advanced["email-otp"]`` applied (``send_otp`` is the sender)."""
    if not isinstance(given, Mapping):
        raise TypeError('KerniaOptions.advanced["email-otp"] must be a dict')
    unknown = sorted(set(given) - set(OPTION_KEYS))
    if unknown:
        from kernia.errors import ConfigurationError

        raise ConfigurationError(
            f'KerniaOptions.advanced["email-otp"]: unknown option(s) {", ".join(unknown)}; '
            f"known: {', '.join(OPTION_KEYS)}"
        )
    merged = {k: v for k, v in given.items() if k != "send_otp"}
    sender = given.get("send_otp", plugin.send_verification_otp)
    base = {
        "otp_length": plugin.otp_length,
        "expires_in": plugin.expires_in,
        "allowed_attempts": plugin.allowed_attempts,
        "store_otp": plugin.store_otp,
        "disable_sign_up": plugin.disable_sign_up,
        "rate_limit": plugin.rate_limit,
    }
    return email_otp(sender, **{**base, **merged})


__all__ = ["EMAIL_OTP_ERROR_CODES", "EmailOtpPlugin", "email_otp"]
