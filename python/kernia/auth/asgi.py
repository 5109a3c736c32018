"""The ASGI adapter: converts between ASGI messages and the engine; no logic of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from kernia._native import NativeAuth
from kernia.auth.sweeper import Sweeper

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ASGIApp:
    def __init__(self, native: NativeAuth, sweeper: Sweeper | None = None) -> None:
        self._native = native
        self._limit = native.max_body_size
        self._timeout = native.request_timeout
        self._sweeper = sweeper

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if self._sweeper is not None:
            self._sweeper.ensure_started()
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The body, cut at one byte over the limit (the engine answers 413 for that);
        ``None`` when the client went away."""
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self._limit:
                return b"\0" * (self._limit + 1)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._limit:
                return b"\0" * (self._limit + 1)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                body = await self._read_body(scope, receive)
        except TimeoutError:
            # A body that never finishes does not hold the request any longer.
            await self._send(send, self._native.request_timeout_response())
            return
        if body is None:
            return
        client = scope.get("client")
        response = await self._native.handle(
            scope["method"],
            scope["path"],
            scope.get("root_path", ""),
            scope.get("query_string", b""),
            scope["headers"],
            body,
            client[0] if client else None,
            scope.get("http_version"),
        )
        await self._send(send, response)

    @staticmethod
    async def _send(send: Send, response: Any) -> None:
        await send({"type": "http.response.start", "status": response.status, "headers": response.headers})
        await send({"type": "http.response.body", "body": response.body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
