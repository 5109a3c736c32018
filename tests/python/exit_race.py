"""Exits while engine workers are still handing results to the event loop.

Usage: exit_race.py DATABASE_URL CALLS. Starts CALLS awaitables, returns as soon as
the first is done, and prints ``done``; the process must then exit with status 0.
"""

import asyncio
import sys

from kernia import KerniaOptions
from kernia.auth import init

auth = init(KerniaOptions(database=sys.argv[1], secret="exit-race-secret-0123456789-abcdef"))


async def main() -> None:
    calls = [asyncio.ensure_future(auth.api.count_users()) for _ in range(int(sys.argv[2]))]
    await asyncio.wait(calls, return_when=asyncio.FIRST_COMPLETED)
    for call in calls:
        call.cancel()


asyncio.run(main())
print("done")
