"""Helpers for testing an app that uses kernia.

``advance_clock`` moves an engine's clock forward, so sessions expire, guests go stale
and rate-limit windows pass without the test sleeping::

    from kernia.testing import advance_clock

    async def test_guests_expire(client, auth):
        ...
        advance_clock(auth, 8 * 24 * 3600)  # eight days later
        assert (await client.get("/api/auth/get-session")).json() is None

The clock moves for everything the engine does from then on: session and
verification expiry, ``update_age`` refreshes, the timestamps it writes, guest
staleness for cleanup, and rate-limit windows. It never moves back, and it is the
engine's alone: ``time.time()`` in the app and the database's ``now()`` do not move.

``freeze_clock`` stops the engine's clock where it is, so times it writes are exact
(a conversion ``advance_clock(auth, 100)`` later took exactly 100 seconds); from then
on only ``advance_clock`` moves it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kernia.auth import Auth

__all__ = ["advance_clock", "freeze_clock"]


def freeze_clock(auth: Auth) -> None:
    """Stops ``auth``'s clock where it is; only :func:`advance_clock` moves it from then on."""
    auth._native.freeze_clock()


def advance_clock(auth: Auth, seconds: float) -> None:
    """Moves ``auth``'s clock forward by ``seconds`` (0 or more; fractions to the millisecond)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"advance_clock: seconds must be a number, got {type(seconds).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"advance_clock: seconds must be a finite number of 0 or more, got {seconds!r}")
    auth._native.advance_clock(float(seconds))
