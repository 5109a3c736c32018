"""The in-process stale-guest sweeper (``anonymous(max_age=..., cleanup_interval=...)``).

It runs as an asyncio task in the event loop that serves requests (the ASGI server's, or the
native server's callback loop), so ``should_delete``/``before_delete``/``on_event`` run where the
app's other callbacks run. A run that fails is logged and the next one comes on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger("kernia")


class Sweeper:
    def __init__(self, cleanup: Callable[[], Awaitable[dict[str, Any]]], interval: float) -> None:
        self._cleanup = cleanup
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def ensure_started(self) -> None:
        """Starts the sweeper in the running event loop, unless it runs there already."""
        loop = asyncio.get_running_loop()
        task = self._task
        if task is not None and not task.done() and task.get_loop() is loop:
            return
        self._task = loop.create_task(self._run(), name="kernia-guest-sweeper")

    async def _run(self) -> None:
        while True:
            try:
                report = await self._cleanup()
                if report.get("deleted"):
                    logger.info("kernia: stale-guest cleanup %s", report)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("kernia: stale-guest cleanup failed; the next run is in %ss", self.interval)
            await asyncio.sleep(self.interval)

    def stop(self) -> None:
        """Cancels the sweeper, from any thread."""
        task, self._task = self._task, None
        if task is None or task.done():
            return
        loop = task.get_loop()
        with contextlib.suppress(RuntimeError):  # the loop is closed already
            loop.call_soon_threadsafe(task.cancel)
