"""Kernia's ``kernia_redis_storage``: the Redis storage for ``KerniaOptions(secondary_storage=...)``.

The engine talks to Redis itself, from Rust, so it only reads where the storage points:
``RedisStorage(client=redis.asyncio.Redis(...))`` (its host, port, database and
credentials) or ``await redis_storage(url="redis://...")``. A plain URL string works as well:
``KerniaOptions(secondary_storage="redis://127.0.0.1:6379/0")``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class RedisStorage:
    """Kernia's Redis storage: a ``redis.asyncio.Redis`` client, or only its URL."""

    client: Any = None
    url: str | None = None

    async def get(self, key: str) -> str | None:
        raw = await self._client().get(key)
        return raw.decode() if isinstance(raw, bytes) else raw

    async def set(self, key: str, value: str, *, ttl: int | None = None) -> None:
        await self._client().set(key, value, ex=ttl)

    async def delete(self, key: str) -> None:
        await self._client().delete(key)

    def _client(self) -> Any:
        if self.client is None:
            import redis.asyncio as redis_asyncio

            self.client = redis_asyncio.Redis.from_url(self.url)
        return self.client


async def redis_storage(*, url: str = "redis://localhost:6379", **kwargs: Any) -> RedisStorage:
    """Kernia's ``redis_storage(url=..., **kwargs)``: with the ``redis`` package installed, a
    client as Kernia makes it (``kwargs`` such as ``db`` or ``password`` go to
    ``Redis.from_url``), whose settings the engine reads; without it, only ``url``."""
    try:
        import redis.asyncio as redis_asyncio
    except ImportError:
        if kwargs:
            raise TypeError(
                f"redis_storage: {', '.join(sorted(kwargs))} need the redis package; put the "
                "database, user and password in the URL (redis://user:password@host:6379/0)"
            ) from None
        return RedisStorage(url=url)
    return RedisStorage(client=redis_asyncio.Redis.from_url(url, **kwargs), url=url)


__all__ = ["RedisStorage", "redis_storage"]
