"""Kernia's ``kernia_passkey``: the passkey plugin (see :mod:`kernia.plugins.passkey`)."""

from kernia.plugins.passkey import PasskeyPlugin, passkey

__all__ = ["PasskeyPlugin", "passkey"]
