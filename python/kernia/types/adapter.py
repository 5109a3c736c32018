"""Kernia's ``kernia.types.adapter``: the records of its database-adapter interface
(``Where``, ``SortBy``, ``FieldDef``, ``ModelDef``), as Kernia apps and tests build them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

WhereOperator = Literal[
    "eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "contains", "starts_with", "ends_with", "ilike_eq"
]
WhereConnector = Literal["AND", "OR"]


@dataclass(frozen=True, slots=True)
class Where:
    """One condition: ``field <operator> value``, joined to the one before by ``connector``."""

    field: str
    value: Any
    operator: WhereOperator = "eq"
    connector: WhereConnector = "AND"


@dataclass(frozen=True, slots=True)
class SortBy:
    field: str
    direction: Literal["asc", "desc"] = "asc"


@dataclass(frozen=True, slots=True)
class FieldDef:
    """A column of a model, as Kernia describes its schema (``type``: ``string``,
    ``number``, ``boolean``, ``date``, ``json``...). The engine owns its own tables'
    columns; these records describe them, and the app's own tables built from them."""

    name: str
    type: str
    required: bool = True
    unique: bool = False
    references: tuple[str, str] | None = None
    default: Any = None
    returned: bool = True
    input: bool = True
    transform: Any = None
    on_update: Any = None
    field_name: str | None = None
    bigint: bool = False
    sortable: bool = False
    index: bool = False
    on_delete: str = "cascade"


@dataclass(frozen=True, slots=True)
class ModelDef:
    name: str
    fields: tuple[FieldDef, ...]
    table_name: str | None = None


class CustomAdapter(Protocol):
    """Kernia's adapter interface, for type annotations: what ``auth.context.adapter`` and
    the adapters given as ``KerniaOptions.database`` answer. The engine drives its own
    database driver, so an app cannot plug in an adapter of its own."""

    async def create(
        self, *, model: str, data: dict[str, Any], select: Sequence[str] | None = None
    ) -> dict: ...

    async def find_one(self, *, model: str, where: Sequence[Where]) -> dict[str, Any] | None: ...

    async def find_many(self, *, model: str, where: Sequence[Where] = ()) -> list[dict[str, Any]]: ...

    async def count(self, *, model: str, where: Sequence[Where] = ()) -> int: ...

    async def update(self, *, model: str, where: Sequence[Where], update: dict[str, Any]) -> dict | None: ...

    async def update_many(self, *, model: str, where: Sequence[Where], update: dict[str, Any]) -> int: ...

    async def delete(self, *, model: str, where: Sequence[Where]) -> None: ...

    async def delete_many(self, *, model: str, where: Sequence[Where]) -> int: ...


__all__ = ["CustomAdapter", "FieldDef", "ModelDef", "SortBy", "Where", "WhereConnector", "WhereOperator"]
