"""Kernia's framework integrations (``kernia_fastapi``, ``kernia_starlette``): mount the auth
routes on an app and read the session in its routes, with Kernia's names and records."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

from kernia.integrations.guests import GuestNotAllowed
from kernia.integrations.session import resolve_session_from_request
from kernia.types.context import Session


def mount_kernia(app: Any, auth: Any) -> None:
    """Mounts the auth routes at ``base_path`` and keeps ``auth`` as ``app.state.kernia``,
    where :func:`get_session` and :func:`require_session` find it."""
    app.mount(auth.base_path, auth.router.mount())
    app.state.kernia = auth


async def get_session(request: Request) -> Session | None:
    """The request's active session, or ``None`` (a FastAPI dependency, or call it)."""
    return await resolve_session_from_request(request, request.app.state.kernia)


async def require_session(request: Request) -> Session:
    """The request's active session; 401 without one."""
    session = await get_session(request)
    if session is None:
        raise HTTPException(status_code=401, detail="UNAUTHORIZED")
    return session


async def require_registered(request: Request) -> Session:
    """The request's active session of a registered user: 401 without one, 403
    ``GUEST_NOT_ALLOWED`` for a guest (checkout, API keys...)."""
    session = await require_session(request)
    if session.is_anonymous:
        raise GuestNotAllowed()
    return session


#: The name Kernia's docs use for ``mount_kernia``.
mount_auth = mount_kernia

__all__ = [
    "GuestNotAllowed",
    "get_session",
    "mount_auth",
    "mount_kernia",
    "require_registered",
    "require_session",
]
