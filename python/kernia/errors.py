"""The exceptions kernia raises and understands."""

from __future__ import annotations

from kernia._native import DatabaseError, KerniaError


class ConfigurationError(KerniaError, ValueError):
    """Options that cannot work, raised by ``init()`` and by the plugin builders; a
    ``ValueError`` too. The message names the option."""


class APIError(KerniaError):
    """An error with an HTTP status, a stable ``code`` and a readable ``message``.

    Raised by app callbacks to answer the client with that error: raised in ``on_link``,
    it also undoes the conversion.
    """

    def __init__(self, status: int, code: str, message: str | None = None) -> None:
        self.status = int(status)
        self.code = code
        self.message = message if message is not None else code
        super().__init__(f"{self.status} {self.code}: {self.message}")


__all__ = ["APIError", "ConfigurationError", "DatabaseError", "KerniaError"]
