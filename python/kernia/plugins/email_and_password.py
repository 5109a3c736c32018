"""Email and password sign-up and sign-in as a plugin."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kernia.errors import ConfigurationError
from kernia.options import EmailPasswordOptions

_DEFAULTS = EmailPasswordOptions()


@dataclass(frozen=True)
class EmailAndPasswordPlugin:
    id = "email-and-password"
    #: Only the arguments given to ``email_and_password()``.
    given: Mapping[str, Any] = field(default_factory=dict)

    def merged(self, options: EmailPasswordOptions) -> EmailPasswordOptions:
        """``KerniaOptions.email_and_password`` with this plugin's arguments over it, turned on.

        An argument that contradicts a value set in ``KerniaOptions.email_and_password`` is
        refused, naming both: neither silently wins."""
        for key, value in self.given.items():
            theirs = getattr(options, key)
            if theirs != getattr(_DEFAULTS, key) and theirs != value:
                raise ConfigurationError(
                    f"email_and_password({key}={value!r}) contradicts "
                    f"KerniaOptions.email_and_password.{key}={theirs!r}: set it in one place"
                )
        return dataclasses.replace(options, enabled=True, **self.given)


def email_and_password(
    *,
    disable_sign_up: bool | None = None,
    require_email_verification: bool | None = None,
    min_password_length: int | None = None,
    max_password_length: int | None = None,
    auto_sign_in: bool | None = None,
) -> EmailAndPasswordPlugin:
    """Turns on ``POST /sign-up/email`` and ``POST /sign-in/email``.

    Settings come from ``KerniaOptions.email_and_password`` (Kernia's way: the plugin with
    no arguments and the options there); arguments given here apply on top of them."""
    given = {
        "disable_sign_up": disable_sign_up,
        "require_email_verification": require_email_verification,
        "min_password_length": min_password_length,
        "max_password_length": max_password_length,
        "auto_sign_in": auto_sign_in,
    }
    given = {k: v for k, v in given.items() if v is not None}
    for key, value in given.items():
        kind = bool if isinstance(getattr(_DEFAULTS, key), bool) else int
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            got = type(value).__name__
            raise TypeError(f"email_and_password(): {key} must be {kind.__name__}, got {got}")
    return EmailAndPasswordPlugin(given)
