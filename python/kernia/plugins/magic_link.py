"""Magic links: sign in (or sign up) by clicking a link sent by email.

``magic_link(send_magic_link, *, expires_in=300, disable_sign_up=False,
store_token="plain")``

``send_magic_link(email, url, token, ctx)`` (async or plain) delivers the link; the
engine awaits it. ``ctx.metadata`` holds the ``metadata`` object the client sent,
``ctx.request`` the request, ``ctx.auth`` the handle ``init()`` returned. If it
raises, the client gets an error (``kernia.APIError`` as given, anything else as
500 ``CALLBACK_FAILED``) and the token is deleted. A three-argument
``send_magic_link(email, url, token)`` (Kernia's form) works too.

- ``expires_in``: seconds a link stays valid.
- ``disable_sign_up``: a link for an unknown email is refused instead of creating the user.
- ``store_token``: ``"plain"`` keeps the token in the ``verification`` table,
  ``"hashed"`` keeps only its SHA-256, so a leaked table holds no usable link.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class MagicLinkPlugin:
    id = "magic-link"
    send_magic_link: Callable[..., Any] | None = None
    expires_in: int = 300
    disable_sign_up: bool = False
    store_token: Literal["plain", "hashed"] = "plain"

    def options(self) -> dict[str, Any]:
        return {
            "expires_in": self.expires_in,
            "disable_sign_up": self.disable_sign_up,
            "store_token": self.store_token,
        }


def _takes_ctx(f: Callable[..., Any]) -> bool:
    """Whether ``f`` accepts a fourth positional argument."""
    try:
        params = inspect.signature(f).parameters.values()
    except (TypeError, ValueError):
        return True
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 4


def sender(f: Callable[..., Any]) -> Callable[..., Any]:
    """``f`` as ``(email, url, token, ctx)``, also when it takes only the first three."""
    if _takes_ctx(f):
        return f

    def without_ctx(email: str, url: str, token: str, ctx: Any) -> Any:
        return f(email, url, token)

    return without_ctx


def magic_link(
    send_magic_link: Callable[..., Any] | None = None,
    *,
    expires_in: int = 300,
    disable_sign_up: bool = False,
    store_token: Literal["plain", "hashed"] = "plain",
) -> MagicLinkPlugin:
    """Turns on ``POST /sign-in/magic-link`` and ``GET /magic-link/verify``.

    ``send_magic_link`` is required, here or (Kernia's form) in
    ``KerniaOptions(advanced={"magic-link": {"send_magic_link": ...}})``."""
    if send_magic_link is not None and not callable(send_magic_link):
        raise TypeError(
            f"magic_link(): send_magic_link must be a function, got {type(send_magic_link).__name__}"
        )
    if isinstance(expires_in, bool) or not isinstance(expires_in, int):
        raise TypeError(
            f"magic_link(): expires_in must be an int of seconds, got {type(expires_in).__name__}"
        )
    if expires_in <= 0:
        raise ValueError(f"magic_link(): expires_in must be positive, got {expires_in}")
    if not isinstance(disable_sign_up, bool):
        raise TypeError("magic_link(): disable_sign_up must be True or False")
    if store_token not in ("plain", "hashed"):
        raise ValueError(f'magic_link(): store_token must be "plain" or "hashed", got {store_token!r}')
    return MagicLinkPlugin(send_magic_link, expires_in, disable_sign_up, store_token)


__all__ = ["MagicLinkPlugin", "magic_link"]
