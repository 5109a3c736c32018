"""Kernia's ``kernia_fastapi``: ``mount_kernia(app, auth)`` and the ``get_session`` /
``require_session`` helpers for FastAPI apps (see :mod:`kernia.integrations.kernia_style`)."""

from kernia.integrations.kernia_style import get_session, mount_kernia, require_session

#: The name Kernia's docs use for ``mount_kernia``.
mount_auth = mount_kernia

__all__ = ["get_session", "mount_auth", "mount_kernia", "require_session"]
