"""Usernames: sign up with one, sign in with one, check availability.

``username(*, min_username_length=3, max_username_length=30, username_validator=None,
display_username_validator=None, username_normalization=None,
display_username_normalization=None, username_validation_order="pre-normalization",
display_username_validation_order="pre-normalization")``

- ``username_validator(username) -> bool``: replaces the default rule (letters, digits,
  ``_`` and ``.``). ``display_username_validator(display) -> bool``: off by default.
- ``username_normalization(username) -> str``: the stored form (default: lower-cased);
  ``False`` stores usernames as typed. ``display_username_normalization``: off by default.
- ``*_validation_order``: ``"pre-normalization"`` checks the value as typed,
  ``"post-normalization"`` the stored one.

Callbacks may be plain functions or coroutines; they run only when configured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from kernia.error import PLUGIN_ERROR_CODES, error_codes
from kernia.plugins._check import checked, function, integer
from kernia.types.adapter import FieldDef

#: The columns the plugin adds to ``user`` (Kernia's name for them), for apps that build
#: the schema of their own SQLAlchemy metadata.
_USERNAME_USER_FIELDS = (
    FieldDef("username", "string", required=False, unique=True),
    FieldDef("displayUsername", "string", required=False),
)

ValidationOrder = Literal["pre-normalization", "post-normalization"]
_ORDERS = ("pre-normalization", "post-normalization")


#: The codes the plugin answers with: ``{code: message}`` (Kernia's table).
USERNAME_ERROR_CODES = error_codes(PLUGIN_ERROR_CODES["username"])


@dataclass(frozen=True)
class UsernamePlugin:
    id = "username"
    min_username_length: int = 3
    max_username_length: int = 30
    username_validator: Callable[[str], Any] | None = None
    display_username_validator: Callable[[str], Any] | None = None
    username_normalization: Callable[[str], Any] | Literal[False] | None = None
    display_username_normalization: Callable[[str], Any] | None = None
    username_validation_order: ValidationOrder = "pre-normalization"
    display_username_validation_order: ValidationOrder = "pre-normalization"

    def options(self) -> dict[str, Any]:
        """The plain options, as the engine reads them."""
        return {
            "min_username_length": self.min_username_length,
            "max_username_length": self.max_username_length,
            "normalize": self.username_normalization is not False,
            "username_validation_order": self.username_validation_order,
            "display_username_validation_order": self.display_username_validation_order,
        }

    def callables(self) -> dict[str, Callable[..., Any]]:
        """The configured callbacks by name."""
        found = {
            "username_validator": self.username_validator,
            "display_username_validator": self.display_username_validator,
            "username_normalization": self.username_normalization or None,
            "display_username_normalization": self.display_username_normalization,
        }
        return {name: f for name, f in found.items() if callable(f)}


def _order(name: str, value: object) -> ValidationOrder:
    if value not in _ORDERS:
        raise ValueError(f"username(): {name} must be one of {_ORDERS}, got {value!r}")
    return value  # type: ignore[return-value]


def username(
    *,
    min_username_length: int = 3,
    max_username_length: int = 30,
    username_validator: Callable[[str], Any] | None = None,
    display_username_validator: Callable[[str], Any] | None = None,
    username_normalization: Callable[[str], Any] | Literal[False] | None = None,
    display_username_normalization: Callable[[str], Any] | None = None,
    username_validation_order: ValidationOrder = "pre-normalization",
    display_username_validation_order: ValidationOrder = "pre-normalization",
) -> UsernamePlugin:
    """Turns on ``username``/``displayUsername`` on ``POST /sign-up/email``,
    ``POST /sign-in/username``, ``POST /is-username-available`` and Kernia's
    ``POST /sign-up/username``. Wrong types raise ``TypeError`` here, values the engine
    refuses ``ConfigurationError``."""
    plugin = UsernamePlugin(
        min_username_length=integer("username", "min_username_length", min_username_length),
        max_username_length=integer("username", "max_username_length", max_username_length),
        username_validator=function("username", "username_validator", username_validator),
        display_username_validator=function(
            "username", "display_username_validator", display_username_validator
        ),
        username_normalization=function(
            "username", "username_normalization", username_normalization, allow_false=True
        ),
        display_username_normalization=function(
            "username", "display_username_normalization", display_username_normalization
        ),
        username_validation_order=_order("username_validation_order", username_validation_order),
        display_username_validation_order=_order(
            "display_username_validation_order", display_username_validation_order
        ),
    )
    return checked(plugin)


__all__ = ["USERNAME_ERROR_CODES", "UsernamePlugin", "username"]
