"""kernia: guest-session authentication with Kernia's Python API, Better Auth's wire
protocol, and a Rust engine."""

from kernia import options as _options
from kernia._native import __version__
from kernia.errors import APIError, ConfigurationError, DatabaseError, KerniaError
from kernia.options import *  # noqa: F403 (the option classes, listed in kernia.options.__all__)

__all__ = [
    "APIError",
    "ConfigurationError",
    "DatabaseError",
    "KerniaError",
    "__version__",
    *_options.__all__,
]
