"""Kernia's ``kernia_memory_adapter``: ``memory_adapter()`` for ``KerniaOptions(database=...)``.

Here it is the engine's in-memory SQLite database (``database="sqlite::memory:"``): nothing
touches the disk and everything is gone when the process ends, as with Kernia's.
"""

from __future__ import annotations


class MemoryAdapter:
    """An in-memory database for one engine (tests, demos)."""

    url = "sqlite::memory:"

    def __repr__(self) -> str:
        return "memory_adapter()"


def memory_adapter() -> MemoryAdapter:
    return MemoryAdapter()


__all__ = ["MemoryAdapter", "memory_adapter"]
