"""kernia: guest-session authentication with Kernia's Python API, Better Auth's wire
protocol, and a Rust engine."""

from kernia import options as _options
from kernia._native import __version__
from kernia.errors import APIError, ConfigurationError, DatabaseError, KerniaError
from kernia.options import *  # noqa: F403 (the option classes, listed in kernia.options.__all__)
from kernia.types.adapter import CustomAdapter, Where

__all__ = [
    "APIError",
    "ConfigurationError",
    "CustomAdapter",
    "DatabaseError",
    "KerniaError",
    "Where",
    "__version__",
    *_options.__all__,
]


def __getattr__(name: str) -> object:
    # ``AuthContext`` (what ``auth.context`` is) lives with ``init()``, imported on use.
    if name == "AuthContext":
        from kernia.auth import AuthContext

        return AuthContext
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
