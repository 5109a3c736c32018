"""kernia-rs for the benchmark: python ours_server.py native|asgi DATABASE_URL PORT [--rate-limit]
[--cookie-cache] [--redis URL] [--cleanup-after SECONDS REPORT_PATH] (--cookie-cache: Better
Auth's cookie cache on, trusted an hour; --redis: sessions checked in Redis; the last: run the stale-guest cleanup in this process after
SECONDS, with max_age 30 days, and write its report with the time it took to REPORT_PATH)."""

import asyncio
import json
import sys
import threading
import time

from kernia import EmailPasswordOptions, KerniaOptions, RateLimitOptions, RateLimitRule, SessionOptions
from kernia.auth import init
from kernia.plugins.anonymous import anonymous

mode, database, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
# With --rate-limit the limiter runs on every request but never refuses one: its cost alone.
limits = RateLimitOptions(
    enabled="--rate-limit" in sys.argv,
    max=10**9,
    custom_rules={
        "/sign-in/*": RateLimitRule(window=60, max=10**9),
        "/sign-up/*": RateLimitRule(window=60, max=10**9),
    },
)
auth = init(
    KerniaOptions(
        database=database,
        secret="bench-secret-0123456789abcdef0123456789",
        base_url=f"http://127.0.0.1:{port}",
        email_and_password=EmailPasswordOptions(enabled=True),
        rate_limit=limits,
        secondary_storage=sys.argv[sys.argv.index("--redis") + 1] if "--redis" in sys.argv else None,
        session=SessionOptions(cookie_cache_enabled=True, cookie_cache_max_age=3600)
        if "--cookie-cache" in sys.argv
        else SessionOptions(),
        plugins=[anonymous(max_age=30 * 86400)],
    )
)
if "--cleanup-after" in sys.argv:
    at = sys.argv.index("--cleanup-after")
    delay, report_path = float(sys.argv[at + 1]), sys.argv[at + 2]

    def cleanup() -> None:
        time.sleep(delay)
        start = time.monotonic()
        report = asyncio.run(auth.api.cleanup_anonymous_users())
        report["seconds"] = time.monotonic() - start
        with open(report_path, "w") as f:
            json.dump(report, f)

    threading.Thread(target=cleanup, daemon=True).start()
if mode == "native":
    auth.serve(host="127.0.0.1", port=port)
else:
    import uvicorn

    uvicorn.run(auth.router.mount(), host="127.0.0.1", port=port, log_level="warning", access_log=False)
