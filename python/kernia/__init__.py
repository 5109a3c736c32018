"""kernia: guest-session authentication with Kernia's Python API, Better Auth's wire
protocol, and a Rust engine."""

from kernia._native import __version__
from kernia.errors import APIError, ConfigurationError, DatabaseError, KerniaError
from kernia.options import (
    EmailPasswordOptions,
    KerniaOptions,
    RateLimitOptions,
    RateLimitRule,
    SessionOptions,
)

__all__ = [
    "APIError",
    "ConfigurationError",
    "DatabaseError",
    "EmailPasswordOptions",
    "KerniaError",
    "KerniaOptions",
    "RateLimitOptions",
    "RateLimitRule",
    "SessionOptions",
    "__version__",
]
