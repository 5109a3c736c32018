"""Kernia's ``kernia.types.adapter``: the records of its database-adapter interface
(``Where``, ``SortBy``, ``FieldDef``, ``ModelDef``), as Kernia apps and tests build them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

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


__all__ = ["FieldDef", "ModelDef", "SortBy", "Where", "WhereConnector", "WhereOperator"]
