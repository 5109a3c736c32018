"""Stale-guest cleanup at scale: 1,000,000 stale guests, on SQLite and on PostgreSQL.

    python bench/cleanup.py          # from the repository root, with the package installed

For each database:
1. Fill it with CLEANUP_ROWS (default 1,000,000) guests and their sessions, all inactive
   since 2026-01-01 (shaped like the server's own rows), plus one registered user as old.
2. Start the native server (guest sessions on, rate limiting off) and measure concurrent
   guest sign-ins with wrk (16 connections) with nothing else running: the baseline p99.
3. Run `auth.api.cleanup_anonymous_users(batch_size=CLEANUP_BATCH)` in another process (as
   `kernia cleanup-anonymous` from cron would) while wrk keeps signing guests in, in
   rounds of 2 s; print how long the cleanup took, how many it deleted, and the p99 of
   the sign-ins that ran meanwhile (the median and the worst round).
4. Check what is left: no stale guest, the registered user, every guest signed in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import ensure_tools, fresh_pg_database, log, ours, show, wrk
from scale import pg_fill, sqlite_fill

ROWS = int(os.environ.get("CLEANUP_ROWS", "1000000"))
BATCH = int(os.environ.get("CLEANUP_BATCH", "1000"))
SIGN_IN = ("/api/auth/sign-in/anonymous", "sign_in_anonymous.lua")

# Stale guests as bench/scale.py makes its rows, last active on 2026-01-01, and one
# registered user as old, which cleanup must keep.
OLD = "2026-01-01T00:00:00.000Z"
REGISTERED = """INSERT INTO "user" ("id","name","email","emailVerified","createdAt","updatedAt","isAnonymous")
VALUES ('000000000registered', 'Ada', 'ada@example.com', {true}, '{at}', '{at}', {false});"""
SQLITE_FILL = (
    sqlite_fill(ROWS, OLD)
    + REGISTERED.format(true=1, false=0, at=OLD)
    + "PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;"
)
PG_FILL = pg_fill(ROWS, f"'{OLD}'") + REGISTERED.format(true="true", false="false", at=OLD)

# The cleanup, in a process of its own; prints its report with the time it took.
CLEANUP = """
import asyncio, json, sys, time
from kernia import KerniaOptions, RateLimitOptions
from kernia.auth import init
from kernia.plugins.anonymous import anonymous
auth = init(KerniaOptions(database=sys.argv[1], secret="bench-secret-0123456789abcdef0123456789",
                          rate_limit=RateLimitOptions(enabled=False),
                          plugins=[anonymous(max_age=30 * 86400)]))
start = time.monotonic()
report = asyncio.run(auth.api.cleanup_anonymous_users(batch_size=int(sys.argv[2])))
report["seconds"] = time.monotonic() - start
print(json.dumps(report), flush=True)
auth.close()
"""


def sql(backend: str, url: str, query: str) -> int:
    if backend == "postgres":
        out = subprocess.run(["psql", url, "-tAq", "-c", query], check=True, capture_output=True, text=True)
        return int(out.stdout.strip())
    code = f"import sqlite3; c = sqlite3.connect({url.removeprefix('sqlite:///')!r}); print(c.execute({query!r}).fetchone()[0])"
    return int(
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    )


def prepare(backend: str, tmp: Path) -> str:
    if backend == "sqlite":
        url = f"sqlite:///{tmp}/cleanup.db"
    else:
        url = fresh_pg_database("kernia_bench_cleanup")
    # The schema, as the server creates it.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "kernia.cli",
            "cleanup-anonymous",
            "--database",
            url,
            "--max-age",
            "1",
            "--dry-run",
        ],
        check=True,
        capture_output=True,
    )
    log(f"filling {backend} with {ROWS:,} stale guests and their sessions")
    if backend == "sqlite":
        # A separate process: the server's SQLite and Python's must not share one (see README).
        path = url.removeprefix("sqlite:///")
        code = f"import sqlite3; c = sqlite3.connect({path!r}); c.executescript({SQLITE_FILL!r}); c.close()"
        subprocess.run([sys.executable, "-c", code], check=True)
    else:
        subprocess.run(["psql", url, "-q", "-c", PG_FILL], check=True, stdout=subprocess.DEVNULL)
        for q in ("VACUUM ANALYZE", "CHECKPOINT"):
            subprocess.run(["psql", url, "-q", "-c", q], check=True, stdout=subprocess.DEVNULL)
    return url


def bench(backend: str, tmp: Path) -> dict:
    url = prepare(backend, tmp)
    # SQLite has one writer per file: the cleanup runs inside the server process (the API
    # or the sweeper), where its batches queue behind the same writer as the requests. A
    # second process would take the file lock away from the server for each batch.
    # PostgreSQL: from another process, as `kernia cleanup-anonymous` from cron would.
    in_process = backend == "sqlite"
    report_path = tmp / f"{backend}-report.json"
    extra = ("--cleanup-after", "9", str(report_path)) if in_process else ()
    server = ours(f"{backend} native", "native", url, *extra)
    server.start()
    try:
        baseline = [
            wrk(server, "guest sign-in, no cleanup", 16, SIGN_IN[0], script=SIGN_IN[1], seconds=2)
            for _ in range(3)
        ]
        for f in baseline:
            show(f)
        where = "in the server process" if in_process else "in another process"
        log(f"cleanup of {ROWS:,} stale guests in batches of {BATCH} {where}, with sign-ins running")
        proc = None
        if not in_process:
            proc = subprocess.Popen(
                [sys.executable, "-X", "faulthandler", "-c", CLEANUP, url, str(BATCH)],
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "LIBC_FATAL_STDERR_": "1", "RUST_BACKTRACE": "1"},
            )
        during = []
        while (proc.poll() is None) if proc else not report_path.exists():
            f = wrk(server, "guest sign-in during cleanup", 16, SIGN_IN[0], script=SIGN_IN[1], seconds=2)
            show(f)
            during.append(f)
        if proc:
            out, _ = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"cleanup failed with {proc.returncode}; it printed {out!r}")
            report = json.loads(out)
        else:
            report = json.loads(report_path.read_text())
    finally:
        server.stop()
    signed_in = sum(round(f.rps * 2) for f in baseline + during)
    left_guests = sql(
        backend,
        url,
        """SELECT count(*) FROM "user" WHERE "isAnonymous" = """ + ("true" if backend == "postgres" else "1"),
    )
    truth = "true" if backend == "postgres" else "1"
    stale_left = sql(
        backend,
        url,
        f"""SELECT count(*) FROM "user" WHERE "isAnonymous" = {truth} AND "updatedAt" < '2026-06-01'""",
    )
    registered = sql(backend, url, """SELECT count(*) FROM "user" WHERE "email" = 'ada@example.com'""")
    orphans = sql(
        backend,
        url,
        """SELECT count(*) FROM "session" s WHERE NOT EXISTS (SELECT 1 FROM "user" u WHERE u."id" = s."userId")""",
    )
    ok = report["deleted"] == ROWS and stale_left == 0 and registered == 1 and orphans == 0
    return {
        "report": report,
        "baseline_p99": median(f.p99_ms for f in baseline),
        "during_p99_median": median(f.p99_ms for f in during) if during else float("nan"),
        "during_p99_worst": max((f.p99_ms for f in during), default=float("nan")),
        "during_rps": median(f.rps for f in during) if during else float("nan"),
        "rounds": len(during),
        "guests_left": left_guests,
        "signed_in_about": signed_in,
        "ok": ok,
    }


def summary(backend: str, r: dict) -> None:
    rep = r["report"]
    print(
        f"{backend:<8} deleted {rep['deleted']:,} in {rep['seconds']:.1f} s ({rep['deleted'] / rep['seconds']:,.0f}/s); "
        f"sign-in p99 {r['baseline_p99']:.2f} ms alone, {r['during_p99_median']:.2f} ms during cleanup "
        f"(worst 2 s round {r['during_p99_worst']:.2f} ms, {r['during_rps']:,.0f} sign-ins/s); "
        f"left: {r['guests_left']:,} new guests; {'PASS' if r['ok'] else 'FAIL'}",
        flush=True,
    )


def main() -> int:
    ensure_tools()
    backends = os.environ.get("CLEANUP_BACKENDS", "sqlite,postgres").split(",")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            results[backend] = bench(backend, Path(tmp))
            summary(backend, results[backend])
    print()
    print(
        f"stale-guest cleanup, {ROWS:,} stale guests, batches of {BATCH}, 16 connections signing guests in meanwhile"
    )
    for backend, r in results.items():
        summary(backend, r)
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
