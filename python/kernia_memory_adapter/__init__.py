"""Kernia's ``kernia_memory_adapter``: ``memory_adapter()`` for ``KerniaOptions(database=...)``.

Each ``memory_adapter()`` is a database of its own, gone when the process ends: a SQLite
file in a private temporary folder (in memory on Linux, ``/dev/shm``), so that engines
given the same adapter share its data, as with Kernia's. Once an engine uses it, the
adapter answers Kernia's adapter methods (``find_one``, ``find_many``, ``count``,
``create``, ``update``, ``delete``...) on that data, as tests written for Kernia expect.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from typing import Any


def _folder() -> str:
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    folder = tempfile.mkdtemp(prefix="kernia-memory-", dir=base)
    atexit.register(shutil.rmtree, folder, True)
    return folder


class MemoryAdapter:
    """A private database for the engines that are given it (tests, demos)."""

    def __init__(self) -> None:
        self.url = f"sqlite:///{os.path.join(_folder(), 'memory.db')}"
        self._engine: Any = None

    def _attach(self, adapter: Any) -> None:
        """Called by ``init()``: the engine's adapter methods answer for this object."""
        self._engine = adapter

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        engine = self.__dict__.get("_engine")
        if engine is None:
            raise RuntimeError(f"memory_adapter().{name}: no engine uses this adapter yet; pass it to init()")
        return getattr(engine, name)

    def __repr__(self) -> str:
        return "memory_adapter()"


def memory_adapter() -> MemoryAdapter:
    return MemoryAdapter()


__all__ = ["MemoryAdapter", "memory_adapter"]
