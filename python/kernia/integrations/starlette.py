"""FastAPI / Starlette helpers: a dependency that yields the current session."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from kernia.auth import Auth
from kernia.integrations.guests import GuestNotAllowed


def session_dependency(
    auth: Auth, *, required: bool = True, allow_guests: bool = True, disable_cookie_cache: bool = False
) -> Callable[[Request], Awaitable[dict[str, Any] | None]]:
    """A FastAPI dependency: ``{"session", "user", "is_anonymous"}`` of the signed-in visitor.

    With ``required=True`` (the default) a signed-out request gets 401; otherwise ``None``.
    With ``allow_guests=False`` a guest gets 403 ``GUEST_NOT_ALLOWED``
    (:class:`~kernia.integrations.guests.GuestNotAllowed`): the route is for registered users.
    With the cookie cache on (``SessionOptions(cookie_cache_enabled=True)``) the check reads the
    ``session_data`` cookie, not the database; ``disable_cookie_cache=True`` makes a route
    read the database, so a session revoked elsewhere is refused at once.
    """

    async def current_session(request: Request) -> dict[str, Any] | None:
        session = await auth.api.get_session(request.headers, disable_cookie_cache=disable_cookie_cache)
        if session is None:
            if required:
                raise HTTPException(status_code=401, detail="Unauthorized")
            return None
        session["is_anonymous"] = bool(session["user"].get("isAnonymous"))
        if session["is_anonymous"] and not allow_guests:
            raise GuestNotAllowed()
        return session

    return current_session


def metrics_endpoint(auth: Auth) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette/FastAPI endpoint serving the Prometheus page, for a ``metrics_path``
    outside the auth routes: ``app.add_route("/metrics", metrics_endpoint(auth))``."""
    auth.metrics_text()  # refuses now, not at the first scrape, when metrics are off

    async def metrics(request: Request) -> Response:
        return Response(auth.metrics_text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return metrics


__all__ = ["GuestNotAllowed", "metrics_endpoint", "session_dependency"]
