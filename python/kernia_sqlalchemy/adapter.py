"""Kernia's ``kernia_sqlalchemy``: an app that built its auth on a SQLAlchemy engine passes
``sqlalchemy_adapter(url=...)``, ``SQLAlchemyAdapter(engine=...)`` or the engine itself as
``KerniaOptions(database=...)``.

The engine does not drive SQLAlchemy: it opens the database the SQLAlchemy URL names
with its own driver (a SQLite file with the app beside it, see docs/sqlite.md; PostgreSQL
by the same host and database), creates and migrates its tables itself, and the adapter's
methods (``find_one``, ``create``...) run through it. An in-memory SQLite URL
(``sqlite+aiosqlite:///:memory:``, or a named ``file:NAME?mode=memory`` URI) cannot be
shared across two SQLite libraries: the engine gets a private database of its own for it,
one per adapter (one per name for named URIs), gone when the process ends.

The app's own models (any ``ModelDef`` beside Kernia's core tables) get their tables from
``sqlalchemy_adapter()`` / :meth:`SQLAlchemyAdapter.create_schema`, and the adapter's methods
reach their rows too. Dates in them are ``DateTime(timezone=True)`` columns, as in the
engine's tables.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from kernia.auth.adapter import ENGINE_TABLES, BoundAdapter, private_sqlite_url
from kernia.db.schema import CORE_MODELS
from kernia.errors import ConfigurationError
from kernia.types.adapter import FieldDef, ModelDef

_INSTALL = "kernia_sqlalchemy needs SQLAlchemy 2 and an async driver: pip install 'kernia-rs[sqlalchemy]'"

#: Named in-memory SQLite URIs (``file:NAME?mode=memory``) -> the engine's private database
#: for that name, so that adapters given the same name share one, as they would in SQLite.
_NAMED_MEMORY: dict[str, str] = {}
#: The engine's private databases given for in-memory URLs.
_PRIVATE: set[str] = set()


def _private() -> str:
    url = private_sqlite_url()
    _PRIVATE.add(url)
    return url


def _sqlalchemy() -> Any:
    try:
        import sqlalchemy
    except ImportError as e:  # pragma: no cover - the extra is installed with the tests
        raise ImportError(_INSTALL) from e
    return sqlalchemy


def _column_type(f: FieldDef) -> Any:
    sa = _sqlalchemy()
    kinds = {
        "string": lambda: sa.String(255),
        "text": sa.Text,
        "uuid": lambda: sa.Uuid(as_uuid=True),
        "number": sa.BigInteger if f.bigint else sa.Integer,
        "boolean": sa.Boolean,
        "date": lambda: sa.DateTime(timezone=True),
        "json": sa.JSON,
        "string[]": sa.JSON,
        "number[]": sa.JSON,
    }
    if f.type not in kinds:
        raise ValueError(f"field {f.name}: unknown type {f.type!r}; known: {', '.join(kinds)}")
    return kinds[f.type]()


def build_metadata(models: Sequence[ModelDef]) -> Any:
    """SQLAlchemy ``MetaData`` with a table per model (``id`` is the primary key)."""
    sa = _sqlalchemy()
    metadata = sa.MetaData()
    for model in models:
        columns = []
        for f in model.fields:
            args: list[Any] = [_column_type(f)]
            if f.references is not None:
                table, column = f.references
                on_delete = None if f.on_delete in ("no action", "") else f.on_delete.upper()
                args.append(sa.ForeignKey(f"{table}.{column}", ondelete=on_delete))
            kwargs: dict[str, Any] = {
                "primary_key": f.name == "id",
                "unique": f.unique and f.name != "id",
                "nullable": not f.required,
                "index": f.index,
            }
            if f.default is not None and not callable(f.default):
                kwargs["default"] = f.default
            columns.append(sa.Column(f.field_name or f.name, *args, **kwargs))
        sa.Table(model.table_name or model.name, metadata, *columns)
    return metadata


def engine_database_url(url: Any) -> str:
    """The engine's database URL for a SQLAlchemy URL (a string or ``sqlalchemy.URL``).
    In-memory SQLite gives a new private database (a named one, the name's)."""
    sa = _sqlalchemy()
    u = sa.engine.make_url(url) if isinstance(url, str) else url
    backend = u.get_backend_name()
    if backend == "sqlite":
        database = u.database or ""
        query = dict(u.query)
        if database.startswith("file:"):
            name, _, inline = database[len("file:") :].partition("?")
            if query.get("mode") == "memory" or "mode=memory" in inline:
                if name not in _NAMED_MEMORY:
                    _NAMED_MEMORY[name] = _private()
                return _NAMED_MEMORY[name]
            database = name
        if database in ("", ":memory:"):
            return _private()
        return f"sqlite:///{database}"
    if backend == "postgresql":
        query = {k: v for k, v in u.query.items() if k != "ssl"}
        if "ssl" in u.query and "sslmode" not in query:
            query["sslmode"] = u.query["ssl"]  # asyncpg's spelling
        return u.set(drivername="postgresql", query=query).render_as_string(hide_password=False)
    raise ConfigurationError(
        f"KerniaOptions.database: a SQLAlchemy engine on {backend!r} is not supported; the engine "
        "runs on SQLite (sqlite+aiosqlite:///app.db) and PostgreSQL (postgresql+asyncpg://...)"
    )


def _app_models(models: Sequence[ModelDef]) -> list[ModelDef]:
    return [m for m in models if (m.table_name or m.name) not in ENGINE_TABLES]


def _create_in_file(url: str, metadata: Any, models: Sequence[ModelDef]) -> None:
    """The app models' tables, in the engine's private SQLite file."""
    sa = _sqlalchemy()
    from sqlalchemy.dialects import sqlite as sqlite_dialect

    names = {m.table_name or m.name for m in _app_models(models)}
    if not names:
        return
    with sqlite3.connect(url[len("sqlite:///") :]) as conn:
        for table in metadata.sorted_tables:
            if table.name in names:
                ddl = sa.schema.CreateTable(table, if_not_exists=True).compile(
                    dialect=sqlite_dialect.dialect()
                )
                conn.execute(str(ddl))


class SQLAlchemyAdapter(BoundAdapter):
    """Kernia's SQLAlchemy adapter: the app's ``engine`` (``AsyncEngine`` or ``Engine``) names the
    database; the engine's driver serves it."""

    def __init__(self, engine: Any, metadata: Any = None, models: Sequence[ModelDef] = ()) -> None:
        self.engine = engine
        self.models = tuple(models) or tuple(CORE_MODELS)
        self.metadata = metadata if metadata is not None else build_metadata(self.models)
        self._url = engine_database_url(engine.url)
        self._private = self._url in _PRIVATE
        if self._private:
            _create_in_file(self._url, self.metadata, self.models)

    def database_url(self) -> str:
        return self._url

    async def create_schema(self, *, models: Sequence[ModelDef] = ()) -> None:
        """Creates the tables of the app's own models (the engine makes its own at ``init()``)."""
        self.models = self.models + tuple(m for m in models if m not in self.models)
        self.metadata = build_metadata(self.models)
        await _create_app_tables(self.engine, self.metadata, self.models)
        if self._private:
            _create_in_file(self._url, self.metadata, self.models)

    def __repr__(self) -> str:
        return f"SQLAlchemyAdapter(engine={self.engine!r})"


async def _create_app_tables(engine: Any, metadata: Any, models: Sequence[ModelDef]) -> None:
    tables = [metadata.tables[m.table_name or m.name] for m in _app_models(models)]
    if not tables:
        return

    def create(conn: Any) -> None:
        metadata.create_all(conn, tables=tables)

    if hasattr(engine, "sync_engine"):
        async with engine.begin() as conn:
            await conn.run_sync(create)
    else:
        with engine.begin() as conn:
            create(conn)


async def sqlalchemy_adapter(
    *,
    url: str = "sqlite+aiosqlite:///:memory:",
    engine: Any = None,
    extra_models: Sequence[ModelDef] = (),
    create_schema: bool = True,
) -> SQLAlchemyAdapter:
    """An adapter on ``engine``, or on a new async engine for ``url``; with ``create_schema``,
    the tables of ``extra_models`` (the app's own) are created."""
    if engine is None:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(url)
    adapter = SQLAlchemyAdapter(engine=engine, models=tuple(CORE_MODELS) + tuple(extra_models))
    if create_schema:
        await _create_app_tables(engine, adapter.metadata, adapter.models)
    return adapter


__all__ = ["SQLAlchemyAdapter", "build_metadata", "engine_database_url", "sqlalchemy_adapter"]
