"""Kernia's database-adapter interface over the engine's own tables: ``auth.context.adapter``
(and ``memory_adapter()`` once an engine uses it) answer ``create``, ``find_one``,
``find_many``, ``update``, ``update_many``, ``delete``, ``delete_many`` and ``count`` with
Kernia's ``Where`` conditions, through ``auth.db`` (no second driver).

Records are dicts keyed by column (``userId``, ``expiresAt``). Dates are written from
``datetime`` objects or Unix seconds (Kernia's convention for numbers) and read as the
database returns them; booleans read as ``bool`` on both databases.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from kernia.types.adapter import ModelDef, SortBy, Where

#: The engine's tables, with their date and boolean columns.
_TABLES: dict[str, tuple[set[str], set[str]]] = {
    "user": ({"createdAt", "updatedAt"}, {"emailVerified", "isAnonymous"}),
    "session": ({"expiresAt", "createdAt", "updatedAt"}, set()),
    "account": ({"accessTokenExpiresAt", "refreshTokenExpiresAt", "createdAt", "updatedAt"}, set()),
    "verification": ({"expiresAt", "createdAt", "updatedAt"}, set()),
    "passkey": ({"createdAt"}, {"backedUp"}),
    "rateLimit": (set(), set()),
}
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_COMPARE = {"eq": "=", "ne": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def _iso(value: Any) -> Any:
    """A date parameter: ISO text, from a datetime or from Unix seconds."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value


#: Kernia's field types the adapter reads as dates and as booleans.
_DATE_TYPES, _FLAG_TYPES = {"date"}, {"boolean"}


class EngineAdapter:
    """Kernia's adapter methods on the engine's database (``auth.db``): the engine's
    tables, and the app's own ``models`` (``ModelDef``) in the same database."""

    def __init__(self, db: Any, models: Sequence[ModelDef] = ()) -> None:
        self._db = db
        self._tx: ContextVar[Any] = ContextVar("kernia_adapter_transaction", default=None)
        self._tables = dict(_TABLES)
        #: The app models' column defaults, filled in by ``create``.
        self._defaults: dict[str, dict[str, Any]] = {}
        for m in models:
            if m.name not in _TABLES:
                dates = {f.name for f in m.fields if f.type in _DATE_TYPES}
                self._tables[m.name] = (dates, {f.name for f in m.fields if f.type in _FLAG_TYPES})
                self._defaults[m.name] = {f.name: f.default for f in m.fields if f.default is not None}

    # --- SQL building -------------------------------------------------------------------

    def _table(self, model: str) -> tuple[str, set[str], set[str]]:
        if model not in self._tables:
            raise ValueError(f"unknown model {model!r}; the models are {', '.join(sorted(self._tables))}")
        dates, flags = self._tables[model]
        return f'"{model}"', dates, flags

    @staticmethod
    def _column(name: str) -> str:
        if not _COLUMN.match(name):
            raise ValueError(f"not a column name: {name!r}")
        return f'"{name}"'

    def _slot(self, params: list[Any], value: Any, date: bool) -> str:
        params.append(_iso(value) if date else value)
        if self._db.dialect == "postgres":
            return f"${len(params)}::timestamptz" if date else f"${len(params)}"
        return "?"

    def _condition(self, w: Where, dates: set[str], params: list[Any]) -> str:
        col, date, op = self._column(w.field), w.field in dates, w.operator
        if op in ("in", "not_in"):
            values = list(w.value)
            if not values:
                return "1 = 0" if op == "in" else "1 = 1"
            slots = ", ".join(self._slot(params, v, date) for v in values)
            return f"{col} {'IN' if op == 'in' else 'NOT IN'} ({slots})"
        if w.value is None and op in ("eq", "ne"):
            return f"{col} IS {'NOT ' if op == 'ne' else ''}NULL"
        if op in _COMPARE:
            return f"{col} {_COMPARE[op]} {self._slot(params, w.value, date)}"
        if op == "ilike_eq":
            return f"lower({col}) = lower({self._slot(params, w.value, False)})"
        patterns = {"contains": "%{}%", "starts_with": "{}%", "ends_with": "%{}"}
        if op in patterns:
            escaped = str(w.value).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            return f"{col} LIKE {self._slot(params, patterns[op].format(escaped), False)} ESCAPE '\\'"
        raise ValueError(f"unknown where operator {op!r}")

    def _where(self, where: Sequence[Where], dates: set[str], params: list[Any]) -> str:
        """Better Auth's grouping: every AND condition, and (if any) one of the OR conditions."""
        ands = [self._condition(w, dates, params) for w in where if w.connector != "OR"]
        ors = [self._condition(w, dates, params) for w in where if w.connector == "OR"]
        parts = [*ands, *([f"({' OR '.join(ors)})"] if ors else [])]
        return f" WHERE {' AND '.join(parts)}" if parts else ""

    def _record(self, row: dict[str, Any] | None, flags: set[str]) -> dict[str, Any] | None:
        if row is None:
            return None
        return {k: (bool(v) if k in flags and v is not None else v) for k, v in row.items()}

    def _run(self) -> Any:
        """Where statements go: the open :meth:`transaction` of this task, or ``auth.db``."""
        tx = self._tx.get()
        return self._db if tx is None else tx

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Kernia's ``async with adapter.transaction():``: the adapter calls inside the block
        (in this task) run in one transaction, committed when it ends and rolled back when
        it raises. A nested block joins the outer one."""
        if self._tx.get() is not None:
            yield
            return
        async with self._db.transaction() as tx:
            token = self._tx.set(tx)
            try:
                yield
            finally:
                self._tx.reset(token)

    # --- Kernia's adapter methods -------------------------------------------------------

    async def create(self, *, model: str, data: dict[str, Any], select: Sequence[str] | None = None) -> dict:
        table, dates, _ = self._table(model)
        defaults = self._defaults.get(model, {})
        data = {**{k: v() if callable(v) else v for k, v in defaults.items() if k not in data}, **data}
        if "id" not in data:
            import secrets

            data["id"] = secrets.token_hex(16)
        params: list[Any] = []
        cols = ", ".join(self._column(k) for k in data)
        slots = ", ".join(self._slot(params, v, k in dates) for k, v in data.items())
        await self._run().execute(f"INSERT INTO {table} ({cols}) VALUES ({slots})", params)
        found = await self.find_one(model=model, where=(Where("id", data["id"]),), select=select)
        assert found is not None
        return found

    async def find_one(
        self, *, model: str, where: Sequence[Where], select: Sequence[str] | None = None, join: Any = None
    ) -> dict[str, Any] | None:
        rows = await self.find_many(model=model, where=where, limit=1, select=select)
        return rows[0] if rows else None

    async def find_many(
        self,
        *,
        model: str,
        where: Sequence[Where] = (),
        limit: int | None = None,
        offset: int | None = None,
        sort_by: SortBy | None = None,
        select: Sequence[str] | None = None,
        join: Any = None,
    ) -> list[dict[str, Any]]:
        table, dates, flags = self._table(model)
        params: list[Any] = []
        cols = ", ".join(self._column(c) for c in select) if select else "*"
        sql = f"SELECT {cols} FROM {table}{self._where(where, dates, params)}"
        if sort_by is not None:
            direction = "DESC" if sort_by.direction == "desc" else "ASC"
            sql += f" ORDER BY {self._column(sort_by.field)} {direction}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        elif offset and self._db.dialect == "sqlite":
            sql += " LIMIT -1"  # SQLite takes OFFSET only after a LIMIT
        if offset:
            sql += f" OFFSET {int(offset)}"
        rows = await self._run().fetch_all(sql, params)
        return [r for r in (self._record(row, flags) for row in rows) if r is not None]

    async def count(self, *, model: str, where: Sequence[Where] = ()) -> int:
        table, dates, _ = self._table(model)
        params: list[Any] = []
        where_sql = self._where(where, dates, params)
        row = await self._run().fetch_one(f"SELECT count(*) AS n FROM {table}{where_sql}", params)
        return int(row["n"]) if row else 0

    async def update_many(self, *, model: str, where: Sequence[Where], update: dict[str, Any]) -> int:
        table, dates, _ = self._table(model)
        if not update:
            return 0
        params: list[Any] = []
        # The SET parameters are numbered first, then the WHERE's.
        sets = ", ".join(
            f"{self._column(k)} = {self._slot(params, v, k in dates)}" for k, v in update.items()
        )
        where_sql = self._where(where, dates, params)
        return await self._run().execute(f"UPDATE {table} SET {sets}{where_sql}", params)

    async def update(
        self, *, model: str, where: Sequence[Where], update: dict[str, Any]
    ) -> dict[str, Any] | None:
        found = await self.find_one(model=model, where=where, select=("id",))
        if found is None:
            return None
        await self.update_many(model=model, where=(Where("id", found["id"]),), update=update)
        return await self.find_one(model=model, where=(Where("id", found["id"]),))

    async def delete_many(self, *, model: str, where: Sequence[Where]) -> int:
        table, dates, _ = self._table(model)
        params: list[Any] = []
        return await self._run().execute(f"DELETE FROM {table}{self._where(where, dates, params)}", params)

    async def delete(self, *, model: str, where: Sequence[Where]) -> None:
        await self.delete_many(model=model, where=where)


def private_sqlite_url() -> str:
    """The URL of a new SQLite file in a private folder that is removed when the process
    ends (in memory on Linux: ``/dev/shm``)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    folder = tempfile.mkdtemp(prefix="kernia-memory-", dir=base)
    atexit.register(shutil.rmtree, folder, True)
    return f"sqlite:///{os.path.join(folder, 'memory.db')}"


#: The tables the engine creates and migrates itself.
ENGINE_TABLES = frozenset(_TABLES)


class BoundAdapter:
    """An adapter object an app passes as ``KerniaOptions.database``. ``init()`` opens the
    database it names (:meth:`database_url`) with the engine's own driver, then binds the
    adapter: from then on it answers Kernia's adapter methods through the engine."""

    #: The app's own models, whose rows the adapter methods reach too.
    models: tuple[ModelDef, ...] = ()

    def database_url(self) -> str:
        raise NotImplementedError

    def _attach(self, adapter: EngineAdapter) -> None:
        """Called by ``init()``: the engine's adapter methods answer for this object."""
        self.__dict__["_engine_adapter"] = adapter

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        bound = self.__dict__.get("_engine_adapter")
        if bound is None:
            raise RuntimeError(
                f"{type(self).__name__}.{name}: no engine uses this adapter yet; pass it to init()"
            )
        return getattr(bound, name)


__all__ = ["ENGINE_TABLES", "BoundAdapter", "EngineAdapter", "private_sqlite_url"]
