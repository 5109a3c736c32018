"""Kernia's ``kernia.auth.rate_limit``: the rate-limit store objects Kernia apps pass as
``KerniaOptions(rate_limit_store=...)``.

Here the limiter lives in the engine. ``InMemoryRateLimitStore()`` is what it does by
default (per process, ``RateLimitOptions(storage="memory")``); for limits shared by every
process on the database, use ``RateLimitOptions(storage="database")``.
"""

from __future__ import annotations


class InMemoryRateLimitStore:
    """The engine's own in-memory buckets (the default)."""


__all__ = ["InMemoryRateLimitStore"]
