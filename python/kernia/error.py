"""Kernia's ``kernia.error`` module path, over :mod:`kernia.errors`."""

from kernia.errors import APIError, ConfigurationError, DatabaseError, KerniaError

__all__ = ["APIError", "ConfigurationError", "DatabaseError", "KerniaError"]
