"""kernia: guest-session authentication with Kernia's Python API, Better Auth's wire
protocol, and a Rust engine."""

from kernia._native import __version__
from kernia.errors import APIError, ConfigurationError, DatabaseError, KerniaError
from kernia.options import (
    AccountLinkingOptions,
    AccountOptions,
    ChangeEmailOptions,
    DeleteUserOptions,
    EmailPasswordOptions,
    EmailVerificationOptions,
    KerniaOptions,
    RateLimitOptions,
    RateLimitRule,
    SessionOptions,
    UserOptions,
    VerificationOptions,
)

__all__ = [
    "APIError",
    "AccountLinkingOptions",
    "AccountOptions",
    "ChangeEmailOptions",
    "ConfigurationError",
    "DatabaseError",
    "DeleteUserOptions",
    "EmailPasswordOptions",
    "EmailVerificationOptions",
    "KerniaError",
    "KerniaOptions",
    "RateLimitOptions",
    "RateLimitRule",
    "SessionOptions",
    "UserOptions",
    "VerificationOptions",
    "__version__",
]
