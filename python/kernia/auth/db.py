"""``auth.db``: the app's own SQL on the auth database, with no second driver.

    await auth.db.execute("INSERT INTO cart (id, user_id) VALUES (?, ?)", [cart_id, user_id])
    rows = await auth.db.fetch_all("SELECT * FROM cart WHERE user_id = ?", [user_id])
    async with auth.db.transaction() as tx:
        await tx.execute("UPDATE cart SET total = total + ? WHERE id = ?", [price, cart_id])
        await tx.execute("INSERT INTO cart_item (cart_id, sku) VALUES (?, ?)", [cart_id, sku])

Placeholders are ``?`` on SQLite and ``$1``, ``$2`` on PostgreSQL (``auth.db.dialect``);
parameters are a list of ``None``, bool, int, float, str or bytes. Rows are dicts.
``execute`` outside a transaction commits on its own; ``fetch_all``/``fetch_one`` outside
one read beside the engine's writer. A transaction commits when its block ends and rolls
back when it raises. On SQLite a transaction holds the database's one writer from its
first statement to its end, so every sign-in waits for it: keep it short, and never
await the auth routes inside one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kernia._native import AppDatabase, AppTransaction

Params = Sequence[Any] | None


class _Statements:
    """What ``auth.db`` and its transactions both offer."""

    def __init__(self, native: AppDatabase | AppTransaction) -> None:
        self._native = native

    @property
    def dialect(self) -> str:
        """``"sqlite"`` (placeholders ``?``) or ``"postgres"`` (placeholders ``$1``)."""
        return self._native.dialect

    async def execute(self, sql: str, params: Params = None) -> int:
        """Runs one statement; returns how many rows it changed."""
        return await self._native.execute(sql, params)

    async def fetch_all(self, sql: str, params: Params = None) -> list[dict[str, Any]]:
        """The rows of a query, as dicts."""
        return await self._native.fetch_all(sql, params)

    async def fetch_one(self, sql: str, params: Params = None) -> dict[str, Any] | None:
        """The first row of a query, or ``None``."""
        return await self._native.fetch_one(sql, params)


class Transaction(_Statements):
    """Statements that commit together (``async with auth.db.transaction() as tx``)."""

    _native: AppTransaction

    async def __aenter__(self) -> Transaction:
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            await self._native.commit()
        else:
            await self._native.rollback()


class Database(_Statements):
    """The auth database for app code: each ``execute`` commits on its own; ``transaction()``
    groups statements."""

    _native: AppDatabase

    def transaction(self) -> Transaction:
        """``async with auth.db.transaction() as tx:``: commits at the end, rolls back on an exception."""
        return Transaction(self._native.begin())


__all__ = ["Database", "Transaction"]
