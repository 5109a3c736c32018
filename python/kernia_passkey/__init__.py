"""Kernia's ``kernia_passkey``: the passkey plugin (see :mod:`kernia.plugins.passkey`)."""

import importlib

from kernia.plugins.passkey import *  # noqa: F403 (the plugin's names, listed in its __all__)

__all__ = list(importlib.import_module("kernia.plugins.passkey").__all__)
