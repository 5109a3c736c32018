"""The native server as a process: graceful shutdown, keep-alive, request limits, guest options."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from helpers import eventually_sync, kernia_serve

from conftest import parse_iso


def _serve(tmp_path, *extra: str):
    return kernia_serve("--database", f"sqlite:///{tmp_path / 'n.db'}", "--no-rate-limit", *extra)


def _sign_up_in_flight(port: int, i: int) -> tuple[socket.socket, bytes]:
    """A sign-up the server is known to be handling: its head is sent with
    `Expect: 100-continue`, and the server's `100 Continue` (sent when the endpoint starts
    reading the body) has come back. Returns the socket and the body still to send."""
    body = json.dumps({"name": "N", "email": f"n{i}@example.com", "password": "password123"}).encode()
    head = (
        f"POST /api/auth/sign-up/email HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    ).encode()
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    s.sendall(head)
    assert _read_until(s, b"\r\n\r\n", 1).startswith(b"HTTP/1.1 100 Continue")
    return s, body


def _read_all(s: socket.socket) -> bytes:
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    s.close()
    return b"".join(chunks)


def test_sigterm_lets_in_flight_requests_finish_and_closes_cleanly(tmp_path):
    with _serve(tmp_path) as server:
        in_flight = [_sign_up_in_flight(server.port, i) for i in range(4)]
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.line_with("stopping")  # the server has the signal; the requests are still open
        for s, body in in_flight:
            s.sendall(body)
        answers = [_read_all(s) for s, _ in in_flight]
        assert server.stop() == 0
        assert time.monotonic() - t0 < 10
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers), [a[:40] for a in answers]
    # Everything answered 200 is in the database.
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sqlite3; print(sqlite3.connect({str(tmp_path / 'n.db')!r}).execute('select count(*) from user').fetchone()[0])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "4"
    # New connections are refused once it is gone.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.api}/ok")


def test_sigint_stops_the_server(tmp_path):
    with _serve(tmp_path) as server:
        assert httpx.get(f"{server.api}/ok").json() == {"ok": True}
        assert server.stop(signal.SIGINT) == 0


def _read_until(sock: socket.socket, marker: bytes, count: int) -> bytes:
    """What the server sent until `marker` was seen `count` times; fails if it closes first."""
    data = b""
    while data.count(marker) < count:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection after {data!r}"
        data += chunk
    return data


def test_keep_alive_and_the_body_limit(tmp_path):
    with _serve(tmp_path) as server:
        port, base = server.port, server.api
        ok = b"GET /api/auth/ok HTTP/1.1\r\nHost: x\r\n\r\n"
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.settimeout(10)
            # Five requests one after another, all on this one connection.
            for _ in range(5):
                s.sendall(ok)
                assert _read_until(s, b'{"ok":true}', 1).startswith(b"HTTP/1.1 200")
            # Then two pipelined: both answered, in order.
            s.sendall(ok + ok)
            assert _read_until(s, b'{"ok":true}', 2).count(b"HTTP/1.1 200") == 2
        with httpx.Client() as client:
            r = client.post(
                f"{base}/sign-up/email",
                content=b"x" * (1024 * 1024 + 1),
                headers={"content-type": "application/json"},
            )
            assert r.status_code == 413 and r.json()["code"] == "PAYLOAD_TOO_LARGE"


def test_serve_with_guest_lifetime_and_the_sweeper(tmp_path):
    flags = ["--anonymous", "--guest-expires-in", "1h", "--guest-max-age", "1", "--cleanup-interval", "1"]
    with _serve(tmp_path, *flags) as server:
        guest = httpx.post(f"{server.api}/sign-in/anonymous", json={})
        assert guest.status_code == 200
        cookies = {"better-auth.session_token": guest.cookies["better-auth.session_token"]}
        session = httpx.get(f"{server.api}/get-session", cookies=cookies).json()["session"]
        lifetime = (parse_iso(session["expiresAt"]) - parse_iso(session["createdAt"])).total_seconds()
        assert abs(lifetime - 3600) <= 1
        # Idle for over a second (real time: the sweeper runs in another process), the
        # guest is deleted by the server's own sweeper.
        eventually_sync(
            lambda: httpx.get(f"{server.api}/get-session", cookies=cookies).json() is None,
            "the sweeper to delete the idle guest",
            timeout=15,
        )
        assert server.stop() == 0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--guest-max-age", "30d"], "--guest-max-age needs --anonymous"),
        (["--anonymous", "--cleanup-interval", "1h"], "--cleanup-interval needs --guest-max-age"),
        (["--anonymous", "--guest-expires-in", "soon"], "not a duration: 'soon'"),
    ],
)
def test_serve_refuses_guest_flags_that_cannot_work(tmp_path, flags, message):
    cmd = [sys.executable, "-m", "kernia.cli", "serve", "--database", f"sqlite:///{tmp_path / 'n.db'}"]
    done = subprocess.run([*cmd, *flags], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert message in done.stderr
