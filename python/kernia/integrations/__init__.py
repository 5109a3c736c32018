"""Helpers for web frameworks."""
