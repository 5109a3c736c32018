"""Kernia's ``kernia.integrations.session``: what its framework integrations share. An
expired or revoked session reads as absent."""

from __future__ import annotations

from typing import Any

from kernia.types.context import Session


def session_record(found: dict[str, Any]) -> Session:
    """Kernia's ``Session`` record of a ``{"session", "user"}`` answer."""
    session = Session.from_json(found["session"])
    session.is_anonymous = bool(found["user"].get("isAnonymous"))
    return session


#: The session cookie's default name (``auth.session_cookie_name`` is the one in use).
SESSION_COOKIE_NAME = "better-auth.session_token"


async def resolve_session(auth: Any, cookie_value: str | None) -> Session | None:
    """The active session of a raw session-cookie value (signed, as the browser sends
    it), or ``None`` when it is missing, forged, unknown or expired."""
    if not cookie_value:
        return None
    found = await auth.api.get_session({"cookie": f"{auth.session_cookie_name}={cookie_value}"})
    return None if found is None else session_record(found)


async def resolve_session_from_request(request: Any, auth: Any) -> Session | None:
    """The request's active session (anything with ``.headers``), or ``None``."""
    found = await auth.api.get_session(request.headers)
    return None if found is None else session_record(found)


def strip_base_path(scope: dict[str, Any], base_path: str) -> dict[str, Any]:
    """The scope with ``base_path`` taken off the front of its path."""
    if scope.get("type") == "http" and base_path and scope["path"].startswith(base_path):
        scope = dict(scope)
        scope["path"] = scope["path"][len(base_path) :] or "/"
    return scope


__all__ = [
    "SESSION_COOKIE_NAME",
    "resolve_session",
    "resolve_session_from_request",
    "session_record",
    "strip_base_path",
]
