"""What several test modules share: guests and their carts, an on_link that records
its calls, forced races, the account routes' mailbox, polling until something is true, and
`kernia serve` as a process."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from conftest import BASE

#: The keys of a session as Better Auth answers it (get-session, list-sessions).
SESSION_KEYS = {"id", "expiresAt", "token", "createdAt", "updatedAt", "ipAddress", "userAgent", "userId"}


def cart_table(env) -> None:
    env.db.execute(
        'CREATE TABLE IF NOT EXISTS "cart" ("id" text PRIMARY KEY, "user_id" text NOT NULL, "item" text)'
    )
    env.db.execute('DELETE FROM "cart"')


def move_cart_sql(ctx) -> str:
    if ctx.db.dialect == "postgres":
        return 'UPDATE "cart" SET "user_id" = $1 WHERE "user_id" = $2'
    return 'UPDATE "cart" SET "user_id" = ? WHERE "user_id" = ?'


class Recorder:
    """An on_link that records its calls and moves the guest's cart through ctx.db.

    Its signals are threading events: on the native server, callbacks run on the
    server's own event loop, not the test's."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail = fail
        self.started = threading.Event()
        self.release: threading.Event | None = None

    async def __call__(self, anonymous_user, new_user, ctx) -> None:
        self.calls.append((anonymous_user["id"], new_user["id"]))
        self.started.set()
        if self.release is not None:
            await asyncio.to_thread(self.release.wait, 10)
        await ctx.db.execute(move_cart_sql(ctx), [new_user["id"], anonymous_user["id"]])
        if self.fail is not None:
            raise self.fail


async def while_held(on_link: Recorder, first, second):
    """Runs `first` until its conversion is inside `on_link`, then `second` from the same
    guest, and checks that `second` is still waiting a second later (held by the guest's
    lock: the two overlap); then lets `first` finish. Returns both responses."""
    on_link.release = threading.Event()
    one = asyncio.ensure_future(first)
    assert await asyncio.to_thread(on_link.started.wait, 10), "the first conversion never reached on_link"
    two = asyncio.ensure_future(second)
    done, _ = await asyncio.wait({two}, timeout=1.0)
    on_link.release.set()
    assert not done, f"the second request did not wait for the first conversion: {two.result()}"
    return await one, await two


async def guest(b) -> dict:
    r = await b.post("/sign-in/anonymous", {})
    assert r.status_code == 200, r.text
    return r.json()


# --- guest sign-in ---------------------------------------------------------------------------


PREFIX = BASE + "/api/auth"


class Mailbox:
    """The account routes' mail senders, keeping each mail: ``mailbox.sender("reset")``
    is a ``send_reset_password`` that files its mails under "reset"."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []
        self.lock = threading.Lock()

    def sender(self, kind: str, fail: BaseException | None = None):
        async def send(data, ctx) -> None:
            with self.lock:
                self.sent.append((kind, dict(data)))
            if fail is not None:
                raise fail

        return send

    def of(self, kind: str) -> list[dict]:
        with self.lock:
            return [data for k, data in self.sent if k == kind]

    def last(self, kind: str) -> dict:
        mails = self.of(kind)
        assert mails, f"no {kind} mail among {self.sent}"
        return mails[-1]

    def link(self, kind: str) -> str:
        """The last mailed link of this kind as a path under the base path, for Browser.get."""
        url = self.last(kind)["url"]
        assert url.startswith(PREFIX), url
        return url.removeprefix(PREFIX)


async def request_link(b, email="ada@example.com", **extra):
    r = await b.post("/sign-in/magic-link", {"email": email, **extra})
    assert r.status_code == 200, r.text
    assert r.json() == {"status": True}
    return r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- waiting for something the test cannot be told about -----------------------------------


async def eventually(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Polls `check` (a function, or a coroutine function) until it returns something
    truthy, and returns that; fails naming `what` after `timeout` seconds. For effects
    that happen after the answer (a sweeper's run, a callback's log line), where no event
    can be awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"gave up after {timeout} s waiting for {what}"
        await asyncio.sleep(0.02)


def eventually_sync(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """`eventually` for tests without an event loop."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"gave up after {timeout} s waiting for {what}"
        time.sleep(0.02)
    return value


# --- `kernia serve` as a process ------------------------------------------------------------


class Served:
    """A running `kernia serve`: its process, where it listens, and its standard error,
    read line by line as it comes."""

    def __init__(self, proc: subprocess.Popen, host: str, port: int) -> None:
        self.proc, self.host, self.port = proc, host, port
        self.url = f"http://{host}:{port}"
        self.api = self.url + "/api/auth"
        self.lines: list[str] = []
        self._new_line = threading.Condition()
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._new_line:
                self.lines.append(line.rstrip("\n"))
                self._new_line.notify_all()
        with self._new_line:
            self._new_line.notify_all()

    def line_with(self, text: str, timeout: float = 10.0, after: int = 0) -> str:
        """The first line of standard error (from line `after` on) containing `text`."""
        with self._new_line:
            found = self._new_line.wait_for(
                lambda: any(text in line for line in self.lines[after:]) or self.proc.poll() is not None,
                timeout,
            )
            matches = [line for line in self.lines[after:] if text in line]
        assert found and matches, f"no line with {text!r} in: {self.lines}"
        return matches[0]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signals the server and returns its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


@contextlib.contextmanager
def kernia_serve(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Any = None,
    listen: tuple[str, int] | None = None,
    secret: str | None = "served-secret-0123456789abcdef0123",
) -> Iterator[Served]:
    """`python -m kernia.cli serve *args` until the block ends (then SIGTERM). It listens
    on a free port passed as --port, or, given `listen`, where its own flags say."""
    environment = {**os.environ, **(env or {})}
    if secret is not None:
        environment.setdefault("KERNIA_SECRET", secret)
    if listen is None:
        listen = ("127.0.0.1", free_port())
        args = (*args, "--port", str(listen[1]))
    cmd = [sys.executable, "-m", "kernia.cli", "serve", *args]
    proc = subprocess.Popen(cmd, env=environment, cwd=cwd, stderr=subprocess.PIPE, text=True)
    served = Served(proc, *listen)
    try:
        _wait_until_listening(served)
        yield served
    finally:
        if proc.poll() is None:
            served.stop()


def _wait_until_listening(served: Served, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.proc.poll() is not None:
            served.reader.join(5)  # the last lines
            raise RuntimeError(f"kernia serve exited {served.proc.returncode}: {served.lines}")
        try:
            socket.create_connection((served.host, served.port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"kernia serve did not listen on {served.host}:{served.port}: {served.lines}")
