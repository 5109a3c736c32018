"""Kernia's ``kernia.auth.rate_limit``: the rate-limit store objects Kernia apps pass as
``KerniaOptions(rate_limit_store=...)``.

Here the limiter of the auth routes lives in the engine. ``InMemoryRateLimitStore()`` is
what it does by default (per process, ``RateLimitOptions(storage="memory")``); for limits
shared by every process on the database, use ``RateLimitOptions(storage="database")``.

The store also counts on its own, for an app's own routes: ``await store.hit(key,
window=60, max_=10)`` gives a :class:`RateLimitDecision`, as Kernia's does. Those counts
are the object's, apart from the engine's buckets.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RateLimitDecision:
    """One request's verdict: ``allowed``, how many more the window allows, and when
    (Unix seconds) the window ends."""

    allowed: bool
    remaining: int
    reset_at: int


class RateLimitStore(Protocol):
    async def hit(self, key: str, *, window: int, max_: int) -> RateLimitDecision: ...


class InMemoryRateLimitStore:
    """Fixed windows per key, in this process (the engine's default for the auth routes)."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[int, float]] = {}
        self._prune_at = 0.0

    async def hit(self, key: str, *, window: int, max_: int) -> RateLimitDecision:
        """Counts one request for ``key``: at most ``max_`` per ``window`` seconds."""
        if isinstance(window, bool) or not isinstance(window, int | float) or window <= 0:
            raise ValueError("hit: window must be a positive number of seconds")
        if isinstance(max_, bool) or not isinstance(max_, int) or max_ < 0:
            raise ValueError("hit: max_ must be an int of 0 or more")
        # No await below: one hit is atomic on the event loop.
        now = time.time()
        if now >= self._prune_at:
            # Ended windows are dropped once per window, not on every request.
            self._buckets = {k: b for k, b in self._buckets.items() if b[1] > now}
            self._prune_at = now + window
        count, ends = self._buckets.get(key, (0, 0.0))
        if now >= ends:
            count, ends = 0, now + window
        count += 1
        self._buckets[key] = (count, ends)
        return RateLimitDecision(
            allowed=count <= max_, remaining=max(0, max_ - count), reset_at=math.ceil(ends)
        )


__all__ = ["InMemoryRateLimitStore", "RateLimitDecision", "RateLimitStore"]
