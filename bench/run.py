"""kernia-rs against Kernia (pure Python) and Better Auth (Node), side by side.

    python bench/run.py            # from the repository root, with kernia-rs installed

Installs what it needs (wrk from Debian's packages, Kernia 0.1.0 in bench/.venv-kernia,
Better Auth 1.7.25 and pg in bench/peers), starts each server in turn on loopback, and
prints one line per figure, then the ratios against the targets. Figures from one run
on one machine: compare ratios, not absolute numbers. BENCH_SECONDS sets the length of
each measurement (default 5).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
PG = os.environ.get("KERNIA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
KERNIA_VENV = HERE / ".venv-kernia"


def log(msg: str) -> None:
    print(f"# {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, **{"check": True, **kw})


# --- setup ---------------------------------------------------------------------------------------


def ensure_tools() -> None:
    if shutil.which("wrk") is None:
        log("installing wrk")
        run(["apt-get", "update", "-qq"], stdout=subprocess.DEVNULL)
        run(["apt-get", "install", "-y", "-qq", "wrk"], stdout=subprocess.DEVNULL)
    if not (KERNIA_VENV / "bin" / "python").exists():
        log("installing Kernia 0.1.0 in bench/.venv-kernia")
        run([sys.executable, "-m", "venv", str(KERNIA_VENV)])
        pkgs = ["kernia==0.1.0", "sqlalchemy>=2", "aiosqlite", "greenlet", "uvicorn", "uvloop", "httptools"]
        run([str(KERNIA_VENV / "bin" / "pip"), "install", "-q", *pkgs])
    if run([str(KERNIA_VENV / "bin" / "python"), "-c", "import fastapi"], check=False).returncode:
        log("installing FastAPI in bench/.venv-kernia (bench/session_check.py)")
        run([str(KERNIA_VENV / "bin" / "pip"), "install", "-q", "fastapi"])
    if not (HERE / "peers" / "node_modules" / "better-auth").is_dir():
        log("installing Better Auth 1.7.25 and pg in bench/peers")
        run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE / "peers")


def fresh_pg_database(name: str) -> str:
    admin = f"{PG}/postgres"
    run(["psql", admin, "-q", "-c", f"DROP DATABASE IF EXISTS {name}"], stdout=subprocess.DEVNULL)
    run(["psql", admin, "-q", "-c", f"CREATE DATABASE {name}"], stdout=subprocess.DEVNULL)
    return f"{PG}/{name}"


def ceiling(tmp: Path) -> dict:
    log("measuring the SQLite ceiling and the hash time")
    out = run(
        ["cargo", "run", "--quiet", "--release", "--example", "ceiling", "--", str(tmp / "ceiling.db")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- servers and wrk ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Figure:
    server: str
    what: str
    conns: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int = 0


@dataclass
class Server:
    name: str
    cmd: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.cmd, env={**os.environ, **self.env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not start")

    def peak_rss_mib(self) -> float:
        assert self.proc
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def guest_cookie(self) -> str:
        req = urllib.request.Request(
            f"{self.origin}/api/auth/sign-in/anonymous",
            data=b"{}",
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req) as resp:
            # The session cookie, and `session_data` when the cookie cache is on.
            return "; ".join(c.split(";")[0] for c in resp.headers.get_all("Set-Cookie"))


def _ms(value: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)\b", value)
    if not m:
        return float("nan")
    num, unit = m.groups()
    return float(num) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(
    server: Server,
    what: str,
    conns: int,
    path: str,
    *,
    script: str | None = None,
    headers: dict[str, str] | None = None,
    threads: int | None = None,
    seconds: int = SECONDS,
) -> Figure:
    cmd = ["wrk", f"-t{threads or min(conns, 2)}", f"-c{conns}", f"-d{seconds}s", "--latency"]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    if script:
        cmd += ["-s", str(HERE / "lua" / script)]
    out = run(
        [*cmd, server.origin + path],
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_ORIGIN": server.origin},
    ).stdout
    try:
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        # The latency distribution's own lines: "50%" also ends numbers like "77.50%" elsewhere.
        p50 = _ms(re.search(r"^\s+50%\s+(\S+)\s*$", out, re.M).group(1))
        p99 = _ms(re.search(r"^\s+99%\s+(\S+)\s*$", out, re.M).group(1))
    except AttributeError:
        raise RuntimeError(f"unexpected wrk output for {server.name} {what}:\n{out}") from None
    errors = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)) else 0
    return Figure(server.name, what, conns, rps, p50, p99, errors)


def show(f: Figure) -> None:
    err = f"  non-2xx {f.errors}" if f.errors else ""
    print(
        f"{f.server:<24} {f.what:<20} c={f.conns:<3} {f.rps:>10.1f} req/s   p50 {f.p50_ms:>8.2f} ms   p99 {f.p99_ms:>8.2f} ms{err}",
        flush=True,
    )


def measure(server: Server, *, conversions: bool = True) -> dict[tuple[str, int], Figure]:
    log(f"{server.name}: starting")
    server.start()
    figures: dict[tuple[str, int], Figure] = {}
    try:
        cookie = server.guest_cookie()
        wrk(server, "warm-up", 16, "/api/auth/get-session", headers={"Cookie": cookie}, seconds=1)
        session = urllib.request.Request(f"{server.origin}/api/auth/get-session", headers={"Cookie": cookie})
        with urllib.request.urlopen(session) as resp:
            figures[("session-bytes", 16)] = len(resp.read())
        for conns in (2, 16):
            figures[("sign-in", conns)] = wrk(
                server, "guest sign-in", conns, "/api/auth/sign-in/anonymous", script="sign_in_anonymous.lua"
            )
            figures[("session", conns)] = wrk(
                server, "get-session", conns, "/api/auth/get-session", headers={"Cookie": cookie}
            )
        figures[("rss", 16)] = server.peak_rss_mib()
        if conversions:
            for conns in (2, 16):
                f = wrk(server, "conversions", conns, "/", script="convert.lua", threads=conns)
                # Each conversion is two requests: the guest sign-in and the sign-up.
                figures[("convert", conns)] = Figure(
                    f.server, "conversions", conns, f.rps / 2, f.p50_ms, f.p99_ms, f.errors
                )
        for f in figures.values():
            if isinstance(f, Figure):
                show(f)
        print(f"{server.name:<24} {'peak RSS':<20} c=16  {figures[('rss', 16)]:>10.1f} MiB", flush=True)
    finally:
        server.stop()
    return figures


def bare_http(body_bytes: int) -> Figure:
    """The HTTP ceiling for get-session: bench/bare_http.rs, hyper set up as the native server
    is, answering a body of get-session's size with its headers and doing nothing else."""
    log("building bench/bare_http.rs")
    run(["cargo", "build", "--quiet", "--release", "--example", "bare_http"], cwd=ROOT)
    port = free_port()
    cmd = ["cargo", "run", "--quiet", "--release", "--example", "bare_http", "--", str(port), str(body_bytes)]
    server = Server("bare hyper (ceiling)", cmd, port)
    server.start()
    try:
        wrk(server, "warm-up", 16, "/api/auth/get-session", seconds=1)
        f = wrk(server, "fixed body", 16, "/api/auth/get-session")
        show(f)
        return f
    finally:
        server.stop()


def session_p99_under_conversions(server: Server) -> tuple[Figure, Figure]:
    """get-session at 2 connections while 16 connections run conversions."""
    server.start()
    try:
        cookie = server.guest_cookie()
        result: dict[str, Figure] = {}
        t = threading.Thread(
            target=lambda: result.update(
                c=wrk(server, "conversions", 16, "/", script="convert.lua", threads=16)
            )
        )
        t.start()
        time.sleep(1)
        session = wrk(
            server,
            "get-session (loaded)",
            2,
            "/api/auth/get-session",
            headers={"Cookie": cookie},
            seconds=max(SECONDS - 2, 2),
        )
        t.join()
        conv = result["c"]
        conv = Figure(
            conv.server, "conversions (loaded)", 16, conv.rps / 2, conv.p50_ms, conv.p99_ms, conv.errors
        )
        show(conv)
        show(session)
        return conv, session
    finally:
        server.stop()


# --- the run ------------------------------------------------------------------------------------


def main() -> int:
    ensure_tools()
    tmp = Path(tempfile.mkdtemp(prefix="kernia-bench-"))
    ceil = ceiling(tmp)
    print(f"{'ceiling (rusqlite)':<24} {'guest sign-in':<20} c=1   {ceil['sign_in_per_s']:>10.1f} tx/s")
    print(f"{'ceiling (rusqlite)':<24} {'session lookup':<20} c=1   {ceil['lookups_per_s']:>10.1f} lookups/s")
    print(
        f"{'password hash':<24} {'scrypt N=2^14 r=16':<20} {ceil['hash_ms']:>16.1f} ms   limit {ceil['hash_limit_per_s']:.1f}/s on {ceil['cores']} cores"
    )

    native_sqlite = ours("kernia-rs native/sqlite", "native", f"sqlite:///{tmp}/ours.db")
    asgi_sqlite = ours("kernia-rs asgi/sqlite", "asgi", f"sqlite:///{tmp}/ours-asgi.db")
    native_limited = ours("kernia-rs native+limit", "native", f"sqlite:///{tmp}/ours-rl.db", "--rate-limit")
    kernia_port = free_port()
    kernia = Server(
        "kernia 0.1.0/sqlite",
        [
            str(KERNIA_VENV / "bin" / "python"),
            str(HERE / "peers" / "kernia_app.py"),
            f"{tmp}/kernia.db",
            str(kernia_port),
        ],
        kernia_port,
    )

    results: dict[str, dict] = {}
    results["native"] = measure(native_sqlite)
    results["bare"] = bare_http(results["native"][("session-bytes", 16)])
    results["asgi"] = measure(asgi_sqlite, conversions=False)
    results["kernia"] = measure(kernia)
    limited = wrk_once(native_limited)
    results["cached"] = session_only(
        ours("kernia-rs native+cache", "native", f"sqlite:///{tmp}/ours-cc.db", "--cookie-cache")
    )

    pg_ours = fresh_pg_database("kernia_bench_ours")
    pg_ba = fresh_pg_database("kernia_bench_better_auth")
    native_pg = ours("kernia-rs native/postgres", "native", pg_ours)
    ba_port = free_port()
    ba = Server(
        "better-auth 1.7.25/pg",
        ["node", str(HERE / "peers" / "better_auth_server.mjs"), pg_ba, str(ba_port)],
        ba_port,
        env={"NODE_ENV": "production"},
    )
    results["native_pg"] = measure(native_pg)
    results["better_auth"] = measure(ba)
    loaded_conv, loaded_session = session_p99_under_conversions(native_sqlite)

    report(results, ceil, limited, loaded_conv, loaded_session)
    return 0


def ours(name: str, mode: str, database: str, *extra: str) -> Server:
    port = free_port()
    return Server(
        name, [sys.executable, str(HERE / "ours_server.py"), mode, database, str(port), *extra], port
    )


def session_only(server: Server) -> Figure:
    """get-session at 16 connections, nothing else."""
    server.start()
    try:
        cookie = server.guest_cookie()
        wrk(server, "warm-up", 16, "/api/auth/get-session", headers={"Cookie": cookie}, seconds=1)
        f = wrk(server, "get-session", 16, "/api/auth/get-session", headers={"Cookie": cookie})
        show(f)
        return f
    finally:
        server.stop()


def wrk_once(server: Server) -> Figure:
    server.start()
    try:
        f = wrk(server, "guest sign-in", 16, "/api/auth/sign-in/anonymous", script="sign_in_anonymous.lua")
        show(f)
        return f
    finally:
        server.stop()


def report(r: dict, ceil: dict, limited: Figure, loaded_conv: Figure, loaded_session: Figure) -> None:
    n, a, k, npg, ba = r["native"], r["asgi"], r["kernia"], r["native_pg"], r["better_auth"]
    checks: list[tuple[str, float, str, bool]] = []

    def ratio(label: str, ours: float, theirs: float, target: float) -> None:
        x = ours / theirs if theirs else float("inf")
        checks.append((label, x, f">= {target:g}x", x >= target))

    def bound(label: str, value: float, unit: str, limit: float, below: bool = True) -> None:
        checks.append(
            (
                label,
                value,
                f"{'<' if below else '>='} {limit:g} {unit}",
                value < limit if below else value >= limit,
            )
        )

    s16, g16 = ("sign-in", 16), ("session", 16)
    ratio("guest sign-in c16: native / kernia", n[s16].rps, k[s16].rps, 50)
    ratio("guest sign-in c16: native / better-auth", n[s16].rps, ba[s16].rps, 20)
    checks.append(
        (
            "guest sign-in c16: native / ceiling",
            n[s16].rps / ceil["sign_in_per_s"],
            ">= 0.5",
            n[s16].rps / ceil["sign_in_per_s"] >= 0.5,
        )
    )
    bound("guest sign-in c16 native p99", n[s16].p99_ms, "ms", 10)
    ratio("get-session c16: native / kernia", n[g16].rps, k[g16].rps, 50)
    ratio("get-session c16: native / better-auth", n[g16].rps, ba[g16].rps, 20)
    bound("get-session c16 native p99", n[g16].p99_ms, "ms", 5)
    bare = r["bare"]
    checks.append(
        (
            "get-session c16: native / bare HTTP",
            n[g16].rps / bare.rps,
            ">= 0.7",
            n[g16].rps / bare.rps >= 0.7,
        )
    )
    cached = r["cached"]
    checks.append(("  with the cookie cache on / bare HTTP", cached.rps / bare.rps, "(info)", True))
    checks.append(("  with the cookie cache on / off", cached.rps / n[g16].rps, "(info)", True))
    ratio("guest sign-in c16: asgi / kernia", a[s16].rps, k[s16].rps, 10)
    ratio("get-session c16: asgi / kernia", a[g16].rps, k[g16].rps, 10)
    conv = n[("convert", 16)].rps / ceil["hash_limit_per_s"]
    checks.append(("conversions c16 / hash limit", conv, ">= 0.9", conv >= 0.9))
    loaded = loaded_conv.rps / ceil["hash_limit_per_s"]
    checks.append(("  the same while get-session load runs", loaded, "(info)", True))
    bound("get-session p99 during conversions", loaded_session.p99_ms, "ms", 5)
    bound("native peak RSS, 16-connection load", n[("rss", 16)], "MiB", 64)
    ratio("guest sign-in c16: native pg / better-auth", npg[s16].rps, ba[s16].rps, 10)
    ratio("get-session c16: native pg / better-auth", npg[g16].rps, ba[g16].rps, 10)
    checks.append(("rate limiter on: sign-in c16 / off", limited.rps / n[s16].rps, "(cost)", True))

    print("\nratios and targets")
    for label, value, target, ok in checks:
        print(f"{label:<46} {value:>9.2f}   target {target:<12} {'PASS' if ok else 'MISS'}")


if __name__ == "__main__":
    sys.exit(main())
