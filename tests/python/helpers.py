"""What several test modules share: guests and their carts, an on_link that records
its calls, forced races, the magic-link outbox, and server start-up."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time

from conftest import BASE


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


class Outbox:
    """A send_magic_link that keeps what it was asked to send."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.sent: list[dict] = []
        self.fail = fail
        self.lock = threading.Lock()

    async def __call__(self, email, url, token, ctx) -> None:
        with self.lock:
            self.sent.append({"email": email, "url": url, "token": token, "metadata": ctx.metadata})
        if self.fail is not None:
            raise self.fail

    @property
    def last(self) -> dict:
        return self.sent[-1]

    def link(self) -> str:
        """The mailed link as a path under the base path, for Browser.get."""
        assert self.last["url"].startswith(PREFIX), self.last["url"]
        return self.last["url"].removeprefix(PREFIX)


async def request_link(b, email="ada@example.com", **extra):
    r = await b.post("/sign-in/magic-link", {"email": email, **extra})
    assert r.status_code == 200, r.text
    assert r.json() == {"status": True}
    return r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("server did not start")
