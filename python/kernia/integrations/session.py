"""Kernia's ``kernia.integrations.session``: what its framework integrations share. An
expired or revoked session reads as absent."""

from __future__ import annotations

from typing import Any

from kernia.types.context import Session


async def resolve_session_from_request(request: Any, auth: Any) -> Session | None:
    """The request's active session (anything with ``.headers``), or ``None``."""
    found = await auth.api.get_session(request.headers)
    return None if found is None else Session.from_json(found["session"])


def strip_base_path(scope: dict[str, Any], base_path: str) -> dict[str, Any]:
    """The scope with ``base_path`` taken off the front of its path."""
    if scope.get("type") == "http" and base_path and scope["path"].startswith(base_path):
        scope = dict(scope)
        scope["path"] = scope["path"][len(base_path) :] or "/"
    return scope


__all__ = ["resolve_session_from_request", "strip_base_path"]
