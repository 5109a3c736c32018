"""Kernia's ``kernia.db`` module paths."""
