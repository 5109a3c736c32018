"""Kernia's ``kernia_sqlalchemy``: ``sqlalchemy_adapter()`` and ``SQLAlchemyAdapter`` for
``KerniaOptions(database=...)``; see :mod:`kernia_sqlalchemy.adapter`."""

from kernia_sqlalchemy.adapter import SQLAlchemyAdapter, build_metadata, sqlalchemy_adapter

__all__ = ["SQLAlchemyAdapter", "build_metadata", "sqlalchemy_adapter"]
