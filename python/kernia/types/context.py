"""Kernia's ``kernia.types.context``: the ``Session`` and ``User`` records its integrations
hand to app code (``session.user_id``), made from this server's session JSON, and the
request callbacks get as ``ctx.request``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs

T = TypeVar("T")


def _epoch_seconds(iso: str | None) -> int:
    if not iso:
        return 0
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def _from_json(cls: type[T], data: dict[str, Any], times: set[str]) -> T:
    """``cls`` from camelCase JSON: each snake_case field from its camelCase key; the
    fields in ``times`` from ISO dates to Unix seconds."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        head, *rest = f.name.split("_")
        key = head + "".join(part.capitalize() for part in rest)
        if key in data:
            values[f.name] = _epoch_seconds(data[key]) if f.name in times else data[key]
    return cls(**values)


@dataclass
class Session:
    """The active session. ``expires_at`` in Unix seconds, as in Kernia."""

    id: str
    user_id: str
    expires_at: int
    token: str
    ip_address: str | None = None
    user_agent: str | None = None
    impersonated_by: str | None = None
    #: Whether the session's user is a guest.
    is_anonymous: bool = False

    @classmethod
    def from_json(cls, session: dict[str, Any]) -> Session:
        return _from_json(cls, session, {"expires_at"})


@dataclass
class User:
    """The session's user. Times in Unix seconds, as in Kernia."""

    id: str
    email: str
    email_verified: bool = False
    name: str | None = None
    image: str | None = None
    created_at: int = 0
    updated_at: int = 0

    @classmethod
    def from_json(cls, user: dict[str, Any]) -> User:
        return _from_json(cls, user, {"created_at", "updated_at"})


__all__ = ["RequestInfo", "RequestLike", "Session", "User"]


class RequestLike(Protocol):
    """What callbacks may rely on in ``ctx.request`` (Kernia's protocol)."""

    method: str
    path: str
    headers: Mapping[str, str]


class RequestInfo(dict[str, Any]):
    """``ctx.request`` in callbacks: the request that triggered them. Read as a dict
    (``ctx.request["path"]``) or, as in Kernia, by attribute: ``method``, ``path`` (under the
    base path, without the query), ``query_string``, ``headers`` (lower-case names),
    ``client_ip``; and ``query`` and ``cookies`` parsed."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def query(self) -> dict[str, str | list[str]]:
        found = parse_qs(self.get("query_string", ""), keep_blank_values=True)
        return {k: v[0] if len(v) == 1 else v for k, v in found.items()}

    @property
    def cookies(self) -> dict[str, str]:
        jar: dict[str, str] = {}
        for part in self.get("headers", {}).get("cookie", "").split(";"):
            name, eq, value = part.strip().partition("=")
            if eq and name not in jar:
                jar[name] = value
        return jar


def __getattr__(name: str) -> Any:
    # ``AuthContext`` (what ``auth.context`` is) lives with ``init()``; imported on use so
    # that this module does not import the engine's handle.
    if name == "AuthContext":
        from kernia.auth import AuthContext

        return AuthContext
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
