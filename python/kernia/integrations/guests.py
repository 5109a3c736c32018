"""What registered-only routes answer a guest: 403 ``GUEST_NOT_ALLOWED``."""

from __future__ import annotations

from starlette.exceptions import HTTPException

GUEST_NOT_ALLOWED = "GUEST_NOT_ALLOWED"
MESSAGE = "Guests cannot use this; sign up or sign in first"


class GuestNotAllowed(HTTPException):
    """403 for a guest on a registered-only route. Its ``detail`` is
    ``"GUEST_NOT_ALLOWED: <message>"``; ``code`` and ``message`` are also attributes, for
    an exception handler that answers JSON or sends the visitor to sign up."""

    def __init__(self) -> None:
        self.code = GUEST_NOT_ALLOWED
        self.message = MESSAGE
        super().__init__(status_code=403, detail=f"{GUEST_NOT_ALLOWED}: {MESSAGE}")


__all__ = ["GUEST_NOT_ALLOWED", "GuestNotAllowed"]
