"""Scale: kernia-rs on a big database, and two processes on one PostgreSQL.

    python bench/scale.py            # from the repository root, after bench/run.py's setup

1. Guest sign-in and get-session latency on an empty database, then after filling it
   with 1,000,000 users and 1,000,000 sessions (time-prefixed ids and tokens, like
   the server's own),
   on SQLite and on PostgreSQL; prints the figures and the change.
2. Two native server processes sharing one PostgreSQL database, both serving guest
   sign-ins and guest -> sign-up conversions at once; afterwards the rows are counted
   against what the servers acknowledged: nothing acknowledged may be missing, and
   nothing may be there twice. SCALE_ROWS sets the row count (default 1,000,000);
   each latency is the median of SCALE_ROUNDS runs (default 5).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import Server, fresh_pg_database, log, ours, show, wrk

ROWS = int(os.environ.get("SCALE_ROWS", "1000000"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("SCALE_ROUNDS", "5"))


# Rows shaped like the server's own, made earlier: ids that start with their creation
# time (here a counter below any current time prefix) and end random, session tokens
# shaped the same way, guest emails that embed the id, ISO dates (SQLite). Every user a
# guest with one session, all last active at `at`.
def sqlite_fill(rows: int, at: str = "2026-11-01T00:00:00.000Z") -> str:
    return f"""
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}),
  ids(id) AS (SELECT printf('%09d', i) || lower(hex(randomblob(12))) FROM n)
INSERT INTO "user" ("id","name","email","emailVerified","createdAt","updatedAt","isAnonymous")
SELECT id, 'Anonymous', id || '@anonymous.placeholder.invalid', 0, '{at}', '{at}', 1 FROM ids;
INSERT INTO "session" ("id","token","userId","expiresAt","createdAt","updatedAt","ipAddress","userAgent")
SELECT substr("id", 1, 9) || lower(hex(randomblob(12))), substr("id", 1, 9) || lower(hex(randomblob(12))), "id",
       '2099-01-01T00:00:00.000Z', '{at}', '{at}', '127.0.0.1', 'fill' FROM "user" ORDER BY "id";
"""


def pg_fill(rows: int, at: str = "now()") -> str:
    """`at` is an SQL expression."""
    return f"""
INSERT INTO "user" ("id","name","email","emailVerified","createdAt","updatedAt","isAnonymous")
SELECT id, 'Anonymous', id || '@anonymous.placeholder.invalid', false, {at}, {at}, true
FROM (SELECT lpad(i::text, 9, '0') || left(md5(random()::text), 24) AS id FROM generate_series(1, {rows}) i) ids;
INSERT INTO "session" ("id","token","userId","expiresAt","createdAt","updatedAt","ipAddress","userAgent")
SELECT left("id", 9) || left(md5(random()::text), 24), left("id", 9) || left(md5(random()::text), 24), "id",
       '2099-01-01', {at}, {at}, '127.0.0.1', 'fill'
FROM "user" ORDER BY "id";
ANALYZE;
"""


def fill_sqlite(path: str) -> None:
    # A separate process: the server's SQLite and Python's must not share one (see README).
    # Then the WAL is folded into the database, so the measurement sees steady state, not the fill.
    script = sqlite_fill(ROWS) + "PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;"
    code = f"import sqlite3; c = sqlite3.connect({path!r}); c.executescript({script!r}); c.close()"
    subprocess.run([sys.executable, "-c", code], check=True)


def fill_postgres(url: str) -> None:
    subprocess.run(["psql", url, "-q", "-c", pg_fill(ROWS)], check=True, stdout=subprocess.DEVNULL)
    # Steady state, not the fill's aftermath: vacuum (outside a transaction) and checkpoint.
    for sql in ("VACUUM ANALYZE", "CHECKPOINT"):
        subprocess.run(["psql", url, "-q", "-c", sql], check=True, stdout=subprocess.DEVNULL)


def latency(server: Server) -> dict[str, tuple[float, float]]:
    server.start()
    try:
        cookie = server.guest_cookie()
        wrk(server, "warm-up", 16, "/api/auth/get-session", headers={"Cookie": cookie}, seconds=1)
        out = {}
        for what, path, kw in (
            ("guest sign-in", "/api/auth/sign-in/anonymous", {"script": "sign_in_anonymous.lua"}),
            ("get-session", "/api/auth/get-session", {"headers": {"Cookie": cookie}}),
        ):
            # Sub-millisecond latencies on a shared 2-core machine move by a quarter
            # between identical runs: each figure is the median of ROUNDS runs.
            rounds = []
            for _ in range(ROUNDS):
                f = wrk(server, what, 16, path, **kw)
                show(f)
                rounds.append(f)
            out[what] = (median(f.p50_ms for f in rounds), median(f.p99_ms for f in rounds))
        return out
    finally:
        server.stop()


def big_database(backend: str, tmp: Path) -> None:
    if backend == "sqlite":
        path = f"{tmp}/scale.db"
        url = f"sqlite:///{path}"
    else:
        url = fresh_pg_database("kernia_bench_scale")
    empty = latency(ours(f"{backend} empty", "native", url))
    log(f"filling {backend} with {ROWS:,} users and sessions")
    fill_sqlite(path) if backend == "sqlite" else fill_postgres(url)
    full = latency(ours(f"{backend} {ROWS // 1000}k rows", "native", url))
    for what in empty:  # medians of the rounds
        (p50a, p99a), (p50b, p99b) = empty[what], full[what]
        print(
            f"{backend:<8} {what:<14} p50 {p50a:.2f} -> {p50b:.2f} ms ({p50b / p50a - 1:+.0%})   p99 {p99a:.2f} -> {p99b:.2f} ms ({p99b / p99a - 1:+.0%})",
            flush=True,
        )


def count(url: str, sql: str) -> int:
    out = subprocess.run(["psql", url, "-tAq", "-c", sql], check=True, capture_output=True, text=True).stdout
    return int(out.strip())


def two_processes() -> None:
    url = fresh_pg_database("kernia_bench_two")
    a, b = ours("process A", "native", url), ours("process B", "native", url)
    a.start()
    b.start()
    results: dict[str, str] = {}

    def load(server: Server) -> None:
        cmd = [
            "wrk",
            "-t8",
            "-c8",
            f"-d{SECONDS * 2}s",
            "-s",
            str(Path(__file__).parent / "lua" / "convert.lua"),
            server.origin + "/",
        ]
        results[server.name] = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, "BENCH_ORIGIN": server.origin}
        ).stdout

    try:
        threads = [threading.Thread(target=load, args=(s,)) for s in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        a.stop()
        b.stop()
    guests = converted = 0
    for out in results.values():
        m = re.search(r"acknowledged guests=(\d+) converted=(\d+)", out)
        guests += int(m.group(1))
        converted += int(m.group(2))
    in_flight = 16  # at most one unacknowledged request per connection when wrk stops
    accounts = count(url, 'SELECT count(*) FROM "account"')
    real = count(url, 'SELECT count(*) FROM "user" WHERE NOT "isAnonymous"')
    users = count(url, 'SELECT count(*) FROM "user"')
    dup = count(url, 'SELECT count(*) - count(DISTINCT "email") FROM "user"')
    orphans = count(
        url, 'SELECT count(*) FROM "session" s LEFT JOIN "user" u ON u."id" = s."userId" WHERE u."id" IS NULL'
    )
    print(f"two processes: acknowledged {guests} guest sign-ins and {converted} conversions", flush=True)
    print(
        f"two processes: rows: {users} users ({real} converted, {accounts} credential accounts), duplicates {dup}, orphan sessions {orphans}"
    )
    ok = (
        converted <= real <= converted + in_flight
        and accounts == real
        and guests <= users <= guests + in_flight
        and dup == 0
        and orphans == 0
    )
    print(f"two processes: nothing lost, nothing doubled: {'PASS' if ok else 'MISS'}", flush=True)


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="kernia-scale-"))
    for backend in ("sqlite", "postgres"):
        big_database(backend, tmp)
    two_processes()
    return 0


if __name__ == "__main__":
    sys.exit(main())
