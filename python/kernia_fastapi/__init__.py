"""Kernia's ``kernia_fastapi``: ``mount_kernia(app, auth)`` and the ``get_session`` /
``require_session`` helpers for FastAPI apps (see :mod:`kernia.integrations.kernia_style`)."""

import importlib

from kernia.integrations.kernia_style import *  # noqa: F403 (the integration's names, in its __all__)

__all__ = list(importlib.import_module("kernia.integrations.kernia_style").__all__)
