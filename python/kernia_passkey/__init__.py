"""Kernia's ``kernia_passkey``: the passkey plugin (see :mod:`kernia.plugins.passkey`)."""

from kernia.plugins.passkey import (
    PASSKEY_ERROR_CODES,
    PasskeyAdvancedOptions,
    PasskeyAuthenticationOptions,
    PasskeyOptions,
    PasskeyPlugin,
    PasskeyRegistrationOptions,
    passkey,
)

__all__ = [
    "PASSKEY_ERROR_CODES",
    "PasskeyAdvancedOptions",
    "PasskeyAuthenticationOptions",
    "PasskeyOptions",
    "PasskeyPlugin",
    "PasskeyRegistrationOptions",
    "passkey",
]
