"""A server process with guest sessions and rate limiting, for tests that need two processes:
``python serve_guests.py <database-url> <memory|database>``; prints its URL, serves until killed."""

from __future__ import annotations

import sys
import time

from kernia import KerniaOptions, RateLimitOptions
from kernia.auth import init
from kernia.plugins.anonymous import anonymous

from conftest import BASE, SECRET

if __name__ == "__main__":
    url, storage = sys.argv[1], sys.argv[2]
    auth = init(
        KerniaOptions(
            database=url,
            secret=SECRET,
            base_url=BASE,
            rate_limit=RateLimitOptions(enabled=True, storage=storage),
            plugins=[anonymous()],
        )
    )
    server = auth.start_server(port=0)
    print(server.url, flush=True)
    while True:
        time.sleep(3600)
