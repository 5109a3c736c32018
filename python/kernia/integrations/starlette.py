"""FastAPI / Starlette helpers: a dependency that yields the current session."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

from kernia.auth import Auth


def session_dependency(
    auth: Auth, *, required: bool = True
) -> Callable[[Request], Awaitable[dict[str, Any] | None]]:
    """A FastAPI dependency: ``{"session", "user"}`` of the signed-in visitor.

    With ``required=True`` (the default) a signed-out request gets 401; otherwise ``None``.
    """

    async def current_session(request: Request) -> dict[str, Any] | None:
        session = await auth.api.get_session(request.headers)
        if session is None and required:
            raise HTTPException(status_code=401, detail="Unauthorized")
        return session

    return current_session


__all__ = ["session_dependency"]
