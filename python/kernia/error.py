"""Kernia's ``kernia.error`` module path, over :mod:`kernia.errors`: the exceptions, and
the error codes the server answers with (``code`` -> ``message``), as Kernia's tables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kernia._native import error_catalogue
from kernia.errors import APIError, ConfigurationError, DatabaseError, KerniaError

#: Every code the engine answers with, and its message (the first one where a code has two).
ALL_ERROR_CODES: dict[str, str] = {}
for _status, _code, _message in error_catalogue():
    ALL_ERROR_CODES.setdefault(_code, _message)


def error_codes(codes: Iterable[str]) -> dict[str, str]:
    """The table of these codes: ``{code: message}``."""
    return {code: ALL_ERROR_CODES[code] for code in codes}


#: The plugins' codes; the rest are the core's.
PLUGIN_ERROR_CODES: dict[str, tuple[str, ...]] = {
    "anonymous": (
        "INVALID_EMAIL_FORMAT",
        "FAILED_TO_CREATE_USER",
        "ANONYMOUS_USERS_CANNOT_SIGN_IN_AGAIN_ANONYMOUSLY",
        "USER_IS_NOT_ANONYMOUS",
        "DELETE_ANONYMOUS_USER_DISABLED",
        "ANONYMOUS_LINKING_DISABLED",
        "ON_LINK_FAILED",
        "INVALID_RESUME_TOKEN",
        "GUEST_ALREADY_CONVERTED",
    ),
    "username": (
        "USERNAME_TOO_SHORT",
        "USERNAME_TOO_LONG",
        "INVALID_USERNAME",
        "INVALID_DISPLAY_USERNAME",
        "USERNAME_IS_ALREADY_TAKEN",
        "INVALID_USERNAME_OR_PASSWORD",
    ),
    "magic-link": ("INVALID_TOKEN", "new_user_signup_disabled"),
    "email-otp": ("OTP_EXPIRED", "INVALID_OTP", "TOO_MANY_ATTEMPTS"),
    "passkey": (
        "CHALLENGE_NOT_FOUND",
        "YOU_ARE_NOT_ALLOWED_TO_REGISTER_THIS_PASSKEY",
        "FAILED_TO_VERIFY_REGISTRATION",
        "PASSKEY_NOT_FOUND",
        "AUTHENTICATION_FAILED",
    ),
}
_PLUGIN_ONLY = {c for codes in PLUGIN_ERROR_CODES.values() for c in codes} - {"INVALID_TOKEN"}
CORE_ERROR_CODES: dict[str, str] = {c: m for c, m in ALL_ERROR_CODES.items() if c not in _PLUGIN_ONLY}


@dataclass(frozen=True, slots=True)
class ErrorRegistry:
    """``auth.errors``: the codes of the core and of the plugins in use."""

    codes: dict[str, str] = field(default_factory=lambda: dict(CORE_ERROR_CODES))

    def extend(self, codes: Mapping[str, str], *, plugin_id: str) -> None:
        """Adds a plugin's codes (a later plugin's message wins, as in Better Auth)."""
        self.codes.update(codes)


__all__ = [
    "ALL_ERROR_CODES",
    "CORE_ERROR_CODES",
    "APIError",
    "ConfigurationError",
    "DatabaseError",
    "ErrorRegistry",
    "KerniaError",
    "error_codes",
]
