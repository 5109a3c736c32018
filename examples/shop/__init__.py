"""A guest-first shop on kernia-rs: ``python -m examples.shop`` (see README.md here)."""

from .app import create_app

__all__ = ["create_app"]
