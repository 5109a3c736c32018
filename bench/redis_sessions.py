"""Sessions in Redis: get-session and guest sign-in on PostgreSQL, served by one native
process without Redis, one with `secondary_storage` (Redis), and two with Redis sharing the
database and Redis (each driven by its own wrk at half the connections, run at once; the
figures are their sum and the worse p99).

    python bench/redis_sessions.py     # from the repository root, after bench/run.py's setup

Needs the machine's PostgreSQL and a Redis at $BENCH_REDIS_URL (default redis://127.0.0.1:6379/15,
flushed first). BENCH_SECONDS sets each measurement's length (default 10)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import Figure, Server, ensure_tools, fresh_pg_database, log, ours, show, wrk

REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")


def flush_redis() -> None:
    host_port, _, db = REDIS.removeprefix("redis://").rpartition("/")
    host, _, port = host_port.partition(":")
    subprocess.run(["redis-cli", "-h", host, "-p", port or "6379", "-n", db or "0", "FLUSHDB"], check=True)


def measure(servers: list[Server], label: str) -> dict[str, Figure]:
    """get-session (each server with a guest of its own) and guest sign-in, at 16
    connections split over the servers, all servers loaded at once."""
    for s in servers:
        s.start()
    try:
        cookies = [s.guest_cookie() for s in servers]
        conns = 16 // len(servers)
        out: dict[str, Figure] = {}
        for what, path, kw in (
            ("get-session", "/api/auth/get-session", lambda i: {"headers": {"Cookie": cookies[i]}}),
            ("guest sign-in", "/api/auth/sign-in/anonymous", lambda i: {"script": "sign_in_anonymous.lua"}),
        ):
            for i, s in enumerate(servers):
                wrk(s, "warm-up", conns, path, seconds=1, **kw(i))
            figures: list[Figure] = [None] * len(servers)  # type: ignore[list-item]

            def run(i: int, s: Server, what=what, path=path, kw=kw, figures=figures) -> None:
                figures[i] = wrk(s, what, conns, path, **kw(i))

            threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(servers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            total = Figure(
                label,
                what,
                16,
                sum(f.rps for f in figures),
                max(f.p50_ms for f in figures),
                max(f.p99_ms for f in figures),
                sum(f.errors for f in figures),
            )
            show(total)
            out[what] = total
        return out
    finally:
        for s in servers:
            s.stop()


def main() -> int:
    ensure_tools()
    results = {}
    db = fresh_pg_database("kernia_bench_redis_none")
    results["one, no Redis"] = measure([ours("pg", "native", db)], "1 process, no Redis")
    flush_redis()
    db = fresh_pg_database("kernia_bench_redis_one")
    results["one, Redis"] = measure([ours("pg+redis", "native", db, "--redis", REDIS)], "1 process, Redis")
    flush_redis()
    db = fresh_pg_database("kernia_bench_redis_two")
    two = [ours(f"pg+redis #{i}", "native", db, "--redis", REDIS) for i in (1, 2)]
    results["two, Redis"] = measure(two, "2 processes, Redis")
    print("\nPostgreSQL, 16 connections      get-session (p99)           guest sign-in (p99)")
    for name, r in results.items():
        g, s = r["get-session"], r["guest sign-in"]
        print(f"{name:<30} {g.rps:>10,.0f}/s ({g.p99_ms:5.2f} ms)   {s.rps:>10,.0f}/s ({s.p99_ms:5.2f} ms)")
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
