"""`auth.api.guest_stats()` on a million guests, on SQLite and on PostgreSQL.

    python bench/guest_stats.py      # from the repository root, with the package installed

For each database: open it once (the engine creates its tables), then fill the guest
funnel with STATS_ROWS (default 1,000,000) guests created over 90 days (30 % converted
by four methods, 5 % upgraded, 10 % deleted by themselves, 30 % cleaned up, 25 % still
guests: 250,000 in the user table with their sessions); then time `guest_stats()` over
everything and over the last 7 days (the median of 5 calls each, after one warm-up).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import fresh_pg_database, log
from scale import pg_fill, sqlite_fill

ROWS = int(os.environ.get("STATS_ROWS", "1000000"))
LIVE = ROWS // 4
DAY_MS = 86_400_000
SPAN_MS = 90 * DAY_MS
SECRET = "bench-secret-0123456789abcdef0123456789"

# Guest i: created at START + i * SPAN / ROWS; its ending by i % 20 (none: still a guest,
# then it is one of the LIVE guests of the user table instead), its method by i % 4.
FUNNEL = """
INSERT INTO "guestFunnel" ("id","createdAt","endedAt","outcome","method","durationMs")
SELECT 'f' || {id}, c, CASE WHEN o IS NULL THEN NULL ELSE c + d END, o,
       CASE WHEN o IN ('converted', 'upgraded') THEN m ELSE NULL END,
       CASE WHEN o IS NULL THEN NULL ELSE d END
FROM (SELECT i, {start} + i * {span} / {rows} AS c, ({i} * 7919) % {day} AS d,
        CASE WHEN i % 20 < 6 THEN 'converted' WHEN i % 20 = 6 THEN 'upgraded'
             WHEN i % 20 < 9 THEN 'deleted' WHEN i % 20 < 15 THEN 'cleaned_up' END AS o,
        CASE i % 4 WHEN 0 THEN 'email' WHEN 1 THEN 'username' WHEN 2 THEN 'magic-link' ELSE 'passkey' END AS m
      FROM {series}) r WHERE o IS NOT NULL;
"""


def options(url: str):
    from kernia import KerniaOptions, RateLimitOptions
    from kernia.plugins.anonymous import anonymous

    return KerniaOptions(
        database=url, secret=SECRET, rate_limit=RateLimitOptions(enabled=False), plugins=[anonymous()]
    )


def create_schema(url: str) -> None:
    from kernia.auth import init

    init(options(url)).close()


def measure(url: str) -> dict[str, float]:
    from kernia.auth import init

    auth = init(options(url))
    now = time.time()

    async def timed(**kw) -> tuple[float, dict]:
        start = time.perf_counter()
        stats = await auth.api.guest_stats(**kw)
        return (time.perf_counter() - start) * 1000, stats

    async def main() -> dict[str, float]:
        out = {}
        for label, kw in (("all", {}), ("last 7 days", {"since": now - 7 * 86400})):
            await timed(**kw)
            runs = [await timed(**kw) for _ in range(5)]
            out[label] = median(ms for ms, _ in runs)
            log(f"{label}: {runs[0][1]}")
        return out

    try:
        return asyncio.run(main())
    finally:
        auth.close()


def sqlite() -> dict[str, float]:
    folder = tempfile.mkdtemp(prefix="kernia-stats-")
    path = os.path.join(folder, "stats.db")
    url = f"sqlite:///{path}"
    create_schema(url)
    start = int((time.time() * 1000) - SPAN_MS)
    series = f"(WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS - 1}) SELECT i FROM n)"
    funnel = FUNNEL.format(
        id="printf('%09d', i)", i="i", start=start, span=SPAN_MS, rows=ROWS, day=DAY_MS, series=series
    )
    script = funnel + sqlite_fill(LIVE) + "PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;"
    log(f"filling {path}: {ROWS:,} funnel rows, {LIVE:,} live guests")
    code = f"import sqlite3; c = sqlite3.connect({path!r}); c.executescript({script!r}); c.close()"
    subprocess.run([sys.executable, "-c", code], check=True)
    return measure(url)


def postgres() -> dict[str, float]:
    url = fresh_pg_database("kernia_bench_stats")
    create_schema(url)
    start = int((time.time() * 1000) - SPAN_MS)
    series = f"generate_series(0, {ROWS - 1}) AS s(i)"
    funnel = FUNNEL.format(
        id="lpad(i::text, 9, '0')",
        i="i::bigint",
        start=start,
        span=SPAN_MS,
        rows=ROWS,
        day=DAY_MS,
        series=series,
    )
    log(f"filling {url}: {ROWS:,} funnel rows, {LIVE:,} live guests")
    subprocess.run(["psql", url, "-q", "-c", funnel + pg_fill(LIVE)], check=True, stdout=subprocess.DEVNULL)
    for sql in ("VACUUM ANALYZE", "CHECKPOINT"):
        subprocess.run(["psql", url, "-q", "-c", sql], check=True, stdout=subprocess.DEVNULL)
    return measure(url)


def main() -> None:
    for name, run in (("SQLite", sqlite), ("PostgreSQL", postgres)):
        figures = run()
        print(
            f"guest_stats on {ROWS:,} guests, {name}: all {figures['all']:.0f} ms, "
            f"last 7 days {figures['last 7 days']:.0f} ms"
        )


if __name__ == "__main__":
    main()
