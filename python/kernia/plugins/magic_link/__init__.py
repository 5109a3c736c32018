"""Magic links: sign in (or sign up) by clicking a link sent by email.

``magic_link(send_magic_link, *, expires_in=300, disable_sign_up=False,
store_token="plain", generate_token=None)``

``send_magic_link(email, url, token, ctx)`` (async or plain) delivers the link; the
engine awaits it. ``ctx.metadata`` holds the ``metadata`` object the client sent,
``ctx.request`` the request, ``ctx.auth`` the handle ``init()`` returned. If it
raises, the client gets an error (``kernia.APIError`` as given, anything else as
500 ``CALLBACK_FAILED``) and the token is deleted. Kernia's forms work too:
``send_magic_link(email, url, token)`` and ``send_magic_link(data, ctx)`` with
``data = {"email", "url", "token", "metadata"?}``.

- ``expires_in``: seconds a link stays valid.
- ``disable_sign_up``: a link for an unknown email is refused instead of creating the user.
- ``store_token``: ``"plain"`` keeps the token in the ``verification`` table,
  ``"hashed"`` keeps only its SHA-256, so a leaked table holds no usable link;
  ``{"type": "custom-hasher", "hash": f}`` keeps ``f(token)`` (sync or async, a str).
- ``generate_token``: ``f(email)`` (sync or async) returns the token to send instead
  of a random one.

The same keys are read from ``KerniaOptions.advanced["magic-link"]`` (Kernia's way);
an unknown key there is refused.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kernia.error import PLUGIN_ERROR_CODES, error_codes
from kernia.plugins._check import checked, flag, function, integer

StoreToken = Literal["plain", "hashed"] | Mapping[str, Any]

#: The keys ``advanced["magic-link"]`` may hold, each a ``magic_link()`` argument.
OPTION_KEYS = ("send_magic_link", "expires_in", "disable_sign_up", "store_token", "generate_token")


#: The codes the plugin answers with: ``{code: message}`` (Kernia's table).
MAGIC_LINK_ERROR_CODES = error_codes(PLUGIN_ERROR_CODES["magic-link"])


@dataclass(frozen=True)
class MagicLinkPlugin:
    id = "magic-link"
    send_magic_link: Callable[..., Any] | None = None
    expires_in: int = 300
    disable_sign_up: bool = False
    store_token: StoreToken = "plain"
    generate_token: Callable[[str], Any] | None = None

    def options(self) -> dict[str, Any]:
        store = self.store_token if isinstance(self.store_token, str) else "custom"
        return {"expires_in": self.expires_in, "disable_sign_up": self.disable_sign_up, "store_token": store}

    def callables(self) -> dict[str, Any]:
        """The functions the engine calls, by the names it knows them by."""
        found: dict[str, Any] = {"send_magic_link": sender(self.send_magic_link)}  # type: ignore[arg-type]
        if self.generate_token is not None:
            found["generate_token"] = self.generate_token
        if isinstance(self.store_token, Mapping):
            found["hash_token"] = self.store_token["hash"]
        return found


def _positional(f: Callable[..., Any]) -> int | None:
    """How many positional arguments ``f`` takes; ``None`` when any number."""
    try:
        params = inspect.signature(f).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    return len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])


def sender(f: Callable[..., Any]) -> Callable[..., Any]:
    """``f`` as ``(email, url, token, ctx)``, also in Kernia's ``(email, url, token)`` and
    ``(data, ctx)`` forms."""
    count = _positional(f)
    if count is None or count >= 4:
        return f
    if count == 3:

        def without_ctx(email: str, url: str, token: str, ctx: Any) -> Any:
            return f(email, url, token)

        return without_ctx

    def as_data(email: str, url: str, token: str, ctx: Any) -> Any:
        data: dict[str, Any] = {"email": email, "url": url, "token": token}
        if ctx.metadata is not None:
            data["metadata"] = ctx.metadata
        return f(data, ctx)

    return as_data


def _check_store_token(store_token: Any) -> None:
    if isinstance(store_token, str):
        if store_token not in ("plain", "hashed"):
            raise ValueError(
                f'magic_link(): store_token must be "plain", "hashed" or {{"type": "custom-hasher", '
                f'"hash": f}}, got {store_token!r}'
            )
        return
    if not isinstance(store_token, Mapping) or store_token.get("type") != "custom-hasher":
        raise ValueError(
            'magic_link(): store_token must be "plain", "hashed" or {"type": "custom-hasher", "hash": f}'
        )
    unknown = set(store_token) - {"type", "hash"}
    if unknown:
        raise ValueError(f"magic_link(): store_token has unknown keys {sorted(unknown)}")
    if not callable(store_token.get("hash")):
        raise TypeError('magic_link(): store_token={"type": "custom-hasher"} needs "hash": a function')


def magic_link(
    send_magic_link: Callable[..., Any] | None = None,
    *,
    expires_in: int = 300,
    disable_sign_up: bool = False,
    store_token: StoreToken = "plain",
    generate_token: Callable[[str], Any] | None = None,
) -> MagicLinkPlugin:
    """Turns on ``POST /sign-in/magic-link`` and ``GET /magic-link/verify``.

    ``send_magic_link`` is required, here or (Kernia's form) in
    ``KerniaOptions(advanced={"magic-link": {"send_magic_link": ...}})``."""
    name = "magic_link"
    function(name, "send_magic_link", send_magic_link)
    integer(name, "expires_in", expires_in)
    flag(name, "disable_sign_up", disable_sign_up, False)
    _check_store_token(store_token)
    function(name, "generate_token", generate_token)
    return checked(MagicLinkPlugin(send_magic_link, expires_in, disable_sign_up, store_token, generate_token))


__all__ = ["MAGIC_LINK_ERROR_CODES", "MagicLinkPlugin", "magic_link"]
