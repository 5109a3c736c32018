"""Passkeys: WebAuthn registration and sign-in (Better Auth's passkey plugin).

``passkey(rp_id=None, rp_name=None, origin=None, *, authenticator_selection=None,
upgrade_anonymous=True)``

- ``rp_id``: the relying party id, a bare host name such as ``example.com``; default:
  the host of ``base_url``. Passkeys are bound to it: changing it later strands them.
- ``rp_name``: the name authenticators show; default ``"Better Auth"``.
- ``origin``: the origin (or list of origins) ceremonies may come from, such as
  ``"https://app.example.com"``; default: the request's ``Origin`` header.
- ``authenticator_selection``: merged over
  ``{"residentKey": "preferred", "userVerification": "preferred"}``.
- ``upgrade_anonymous``: a guest who registers a passkey on their own account becomes a
  registered account in place (same id, same session; the guest's other sessions are
  revoked). ``False`` keeps the account anonymous.

Signatures, attestation, origin, RP id and signature counters are verified in Rust by
``webauthn-rs-core``; ES256, EdDSA and RS256 credentials are accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from kernia.error import PLUGIN_ERROR_CODES, error_codes
from kernia.errors import ConfigurationError
from kernia.plugins._check import checked, flag

#: The codes the plugin answers with: ``{code: message}`` (Kernia's table).
PASSKEY_ERROR_CODES = error_codes(PLUGIN_ERROR_CODES["passkey"])


@dataclass(frozen=True, slots=True)
class PasskeyRegistrationOptions:
    """Kernia's registration overrides; only the defaults are accepted (registration needs
    a signed-in user or guest, and runs no app code)."""

    require_session: bool = True
    resolve_user: Callable[..., Any] | None = None
    after_verification: Callable[..., Any] | None = None
    extensions: Any = None


@dataclass(frozen=True, slots=True)
class PasskeyAuthenticationOptions:
    """Kernia's sign-in overrides; only the defaults are accepted."""

    extensions: Any = None
    after_verification: Callable[..., Any] | None = None


@dataclass(frozen=True, slots=True)
class PasskeyAdvancedOptions:
    """The challenge cookie's name is Better Auth's (``better-auth-passkey``, prefixed)."""

    web_authn_challenge_cookie: str = "better-auth-passkey"


@dataclass(frozen=True, slots=True)
class PasskeyOptions:
    """Kernia's ``passkey(PasskeyOptions(...))``: the same as ``passkey()``'s arguments."""

    rp_id: str | None = None
    rp_name: str | None = None
    origin: str | list[str] | None = None
    authenticator_selection: dict[str, Any] | None = None
    advanced: PasskeyAdvancedOptions = field(default_factory=PasskeyAdvancedOptions)
    registration: PasskeyRegistrationOptions | None = None
    authentication: PasskeyAuthenticationOptions | None = None


def _from_kernia_options(options: PasskeyOptions) -> dict[str, Any]:
    """``passkey()``'s arguments from Kernia's options object; what it cannot do is refused."""
    for name, given, default in (
        ("advanced", options.advanced, PasskeyAdvancedOptions()),
        ("registration", options.registration or PasskeyRegistrationOptions(), PasskeyRegistrationOptions()),
        (
            "authentication",
            options.authentication or PasskeyAuthenticationOptions(),
            PasskeyAuthenticationOptions(),
        ),
    ):
        for f in fields(given):
            if getattr(given, f.name) != getattr(default, f.name):
                raise ConfigurationError(
                    f"passkey(): PasskeyOptions.{name}.{f.name} is not supported; registration needs a "
                    "signed-in user or guest and the ceremonies run no app code"
                )
    return {
        "rp_id": options.rp_id,
        "rp_name": options.rp_name,
        "origin": options.origin,
        "authenticator_selection": options.authenticator_selection,
    }


@dataclass(frozen=True)
class PasskeyPlugin:
    id = "passkey"
    rp_id: str | None = None
    rp_name: str | None = None
    origin: tuple[str, ...] = ()
    authenticator_selection: dict[str, Any] = field(default_factory=dict)
    upgrade_anonymous: bool = True

    def options(self) -> dict[str, Any]:
        return {
            "rp_id": self.rp_id,
            "rp_name": self.rp_name,
            "origin": list(self.origin),
            "authenticator_selection": dict(self.authenticator_selection) or None,
            "upgrade_anonymous": self.upgrade_anonymous,
        }

    def callables(self) -> dict[str, Any]:
        """None: passkeys call no app code."""
        return {}


def passkey(
    rp_id: str | PasskeyOptions | None = None,
    rp_name: str | None = None,
    origin: str | list[str] | tuple[str, ...] | None = None,
    *,
    authenticator_selection: dict[str, Any] | None = None,
    upgrade_anonymous: bool = True,
) -> PasskeyPlugin:
    """Turns on the seven ``/passkey/*`` endpoints. Kernia's ``passkey(PasskeyOptions(...))``
    works too."""
    if isinstance(rp_id, PasskeyOptions):
        if rp_name is not None or origin is not None or authenticator_selection is not None:
            raise TypeError("passkey(): give PasskeyOptions or the arguments, not both")
        return passkey(**_from_kernia_options(rp_id), upgrade_anonymous=upgrade_anonymous)
    for name, value in (("rp_id", rp_id), ("rp_name", rp_name)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"passkey(): {name} must be a string, got {type(value).__name__}")
    if origin is None:
        origins: tuple[str, ...] = ()
    elif isinstance(origin, str):
        origins = (origin,)
    elif isinstance(origin, (list, tuple)) and all(isinstance(o, str) for o in origin):
        origins = tuple(origin)
    else:
        raise TypeError("passkey(): origin must be a string or a list of strings")
    if authenticator_selection is not None and not isinstance(authenticator_selection, dict):
        raise TypeError("passkey(): authenticator_selection must be a dict")
    flag("passkey", "upgrade_anonymous", upgrade_anonymous, True)
    plugin = PasskeyPlugin(
        rp_id=rp_id,
        rp_name=rp_name,
        origin=origins,
        authenticator_selection=dict(authenticator_selection or {}),
        upgrade_anonymous=upgrade_anonymous,
    )
    return checked(plugin)


__all__ = [
    "PASSKEY_ERROR_CODES",
    "PasskeyAdvancedOptions",
    "PasskeyAuthenticationOptions",
    "PasskeyOptions",
    "PasskeyPlugin",
    "PasskeyRegistrationOptions",
    "passkey",
]
