"""Kernia's ``kernia_memory_adapter``: ``memory_adapter()`` for ``KerniaOptions(database=...)``.

Each ``memory_adapter()`` is a database of its own, gone when the process ends: a SQLite
file in a private temporary folder (in memory on Linux, ``/dev/shm``), so that engines
given the same adapter share its data, as with Kernia's. Once an engine uses it, the
adapter answers Kernia's adapter methods (``find_one``, ``find_many``, ``count``,
``create``, ``update``, ``delete``...) on that data, as tests written for Kernia expect.
"""

from __future__ import annotations

from kernia.auth.adapter import BoundAdapter, private_sqlite_url


class MemoryAdapter(BoundAdapter):
    """A private database for the engines that are given it (tests, demos)."""

    def __init__(self) -> None:
        self.url = private_sqlite_url()

    def database_url(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return "memory_adapter()"


def memory_adapter() -> MemoryAdapter:
    return MemoryAdapter()


__all__ = ["MemoryAdapter", "memory_adapter"]
