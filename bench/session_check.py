"""What an app's own endpoint pays for the session check: FastAPI `GET /me` under uvicorn
(uvloop, httptools), with no check (the ceiling), with kernia-rs's
`session_dependency(auth)` (reading the database, with the cookie cache on, and with sessions
in Redis at $BENCH_REDIS_URL), and with
Kernia 0.1.0's `require_session`, in alternating
rounds of wrk (16 connections), all on SQLite with a guest's session cookie.

    python bench/session_check.py        # from the repository root, kernia-rs installed

BENCH_SECONDS sets each round's length (default 10), BENCH_ROUNDS the rounds (default 2).
Target: the checked endpoint at 85 % or more of the plain one."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import HERE, KERNIA_VENV, Server, ensure_tools, free_port, log, show, wrk

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))


def servers(tmp: Path) -> list[tuple[Server, bool]]:
    """Each server, and whether its /me needs a session cookie."""
    ours = [sys.executable, str(HERE / "me_app.py")]
    plain_port, noop_port, checked_port, cached_port, redis_port, kernia_port = (
        free_port() for _ in range(6)
    )
    return [
        (Server("FastAPI, no check", [*ours, "plain", "-", str(plain_port)], plain_port), False),
        (Server("FastAPI, a no-op dependency", [*ours, "noop", "-", str(noop_port)], noop_port), False),
        (
            Server(
                "kernia-rs session_dependency",
                [*ours, "checked", f"sqlite:///{tmp / 'ours.db'}", str(checked_port)],
                checked_port,
            ),
            True,
        ),
        (
            Server(
                "kernia-rs, cookie cache on",
                [*ours, "cached", f"sqlite:///{tmp / 'cached.db'}", str(cached_port)],
                cached_port,
            ),
            True,
        ),
        (
            Server(
                "kernia-rs, sessions in Redis",
                [*ours, "redis", f"sqlite:///{tmp / 'redis.db'}", str(redis_port)],
                redis_port,
            ),
            True,
        ),
        (
            Server(
                "Kernia 0.1.0 require_session",
                [
                    str(KERNIA_VENV / "bin" / "python"),
                    str(HERE / "peers" / "kernia_me_app.py"),
                    str(tmp / "k.db"),
                    str(kernia_port),
                ],
                kernia_port,
            ),
            True,
        ),
    ]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ensure_tools()
    results: dict[str, list[float]] = {}
    # CPU time per request: what the server spends on one, steadier than requests per
    # second on a machine whose other load comes and goes (wrk shares it too).
    cpu_us: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for server, needs_cookie in servers(Path(tmp)):
            results[server.name] = []
            cpu_us[server.name] = []
            server.start()
            try:
                headers = {"Cookie": server.guest_cookie()} if needs_cookie else {}
                # The check must pass: a 401 would be measured as a (fast) answer otherwise.
                warm = wrk(server, "GET /me (warm-up)", 16, "/me", headers=headers, seconds=2)
                if warm.errors:
                    raise RuntimeError(f"{server.name}: /me answered {warm.errors} non-2xx")
            finally:
                server.stop()
        for round_ in range(ROUNDS):
            log(f"round {round_ + 1} of {ROUNDS}")
            for server, needs_cookie in servers(Path(tmp)):
                server.start()
                try:
                    headers = {"Cookie": server.guest_cookie()} if needs_cookie else {}
                    before = cpu_seconds(server.proc.pid)
                    f = wrk(server, "GET /me", 16, "/me", headers=headers, threads=1, seconds=SECONDS)
                    spent = cpu_seconds(server.proc.pid) - before
                    show(f)
                    assert not f.errors, f
                    results[server.name].append(f.rps)
                    cpu_us[server.name].append(spent / (f.rps * SECONDS) * 1e6)
                finally:
                    server.stop()
    print()
    ceiling = statistics.median(results["FastAPI, no check"])
    ceiling_cpu = statistics.median(cpu_us["FastAPI, no check"])
    for name, runs in results.items():
        share = statistics.median(runs) / ceiling
        listed = " / ".join(f"{r:,.0f}" for r in runs)
        cpu = statistics.median(cpu_us[name])
        print(
            f"{name:<32} {listed:>24} req/s  {share:6.1%} of the plain endpoint;"
            f"  CPU {cpu:6.1f} us/request ({ceiling_cpu / cpu:6.1%})"
        )
    ours = statistics.median(results["kernia-rs session_dependency"]) / ceiling
    print(
        f"\ntarget: kernia-rs's checked endpoint >= 85 % of the plain one: {ours:.1%} {'met' if ours >= 0.85 else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
