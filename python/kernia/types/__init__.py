"""Kernia's ``kernia.types`` module paths, over this package's own modules."""
