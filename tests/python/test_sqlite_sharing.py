"""The app's own SQLite code and the engine share one database file in one process,
and nothing is lost.

The engine serves sign-ups, guest sign-ins and guest conversions (whose ``on_link`` moves
cart rows through ``ctx.db``) while the same process's app code inserts, updates and
reads its own rows in the same file through ``sqlite3``, SQLAlchemy and SQLAlchemy with
aiosqlite, opening and closing connections all the time. Afterwards another process
reads the file: every acknowledged account, conversion and app row is there, and the
file is sound. Through the native server and through the ASGI app mounted in FastAPI."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fastapi import Depends, FastAPI
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from kernia import EmailPasswordOptions, KerniaOptions, RateLimitOptions
from kernia.auth import init
from kernia.integrations.fastapi import session_dependency
from kernia.plugins.anonymous import anonymous

from conftest import BASE, SECRET, Browser

GUESTS = 24  # each converted by a sign-up, so each costs a password hash
SIGN_UPS = 12
GUEST_SIGN_INS = 150
APP_OPS = 400  # per kind of app code: sqlite3, SQLAlchemy, SQLAlchemy + aiosqlite


class Ledger:
    """What was acknowledged, to look for afterwards."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.emails: list[str] = []
        self.conversions: list[tuple[str, str, str]] = []  # guest id, new user id, cart row id
        self.guests: list[str] = []
        self.app_rows: dict[str, int] = {}  # row id -> last value written

    def add(self, name: str, item) -> None:
        with self.lock:
            getattr(self, name).append(item)


def app_sqlite3(path: Path, ledger: Ledger, tag: str) -> None:
    """Plain sqlite3, a connection per operation, as short scripts and handlers do."""
    for i in range(APP_OPS):
        row = f"{tag}-{i}"
        conn = sqlite3.connect(path, timeout=30)
        try:
            conn.execute("INSERT INTO notes (id, value) VALUES (?, ?)", (row, 0))
            conn.commit()
            if i % 3 == 0:
                conn.execute("UPDATE notes SET value = ? WHERE id = ?", (i, row))
                conn.commit()
                ledger.app_rows[row] = i
            else:
                ledger.app_rows[row] = 0
            conn.execute("SELECT COUNT(*) FROM user").fetchone()
        finally:
            conn.close()


def app_sqlalchemy(path: Path, ledger: Ledger, tag: str) -> None:
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool, connect_args={"timeout": 30})
    try:
        for i in range(APP_OPS):
            row = f"{tag}-{i}"
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO notes (id, value) VALUES (:id, :v)"), {"id": row, "v": i})
            with engine.connect() as conn:
                assert conn.execute(text("SELECT value FROM notes WHERE id = :id"), {"id": row}).scalar() == i
            ledger.app_rows[row] = i
    finally:
        engine.dispose()


async def app_aiosqlite(path: Path, ledger: Ledger, tag: str) -> None:
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{path}", poolclass=NullPool, connect_args={"timeout": 30}
    )
    try:
        for i in range(APP_OPS):
            row = f"{tag}-{i}"
            async with engine.begin() as conn:
                await conn.execute(
                    text("INSERT INTO notes (id, value) VALUES (:id, :v)"), {"id": row, "v": i}
                )
                await conn.execute(text("SELECT COUNT(*) FROM session"))
            ledger.app_rows[row] = i
    finally:
        await engine.dispose()


def read_back(path: Path) -> dict:
    """Everything the checks need, read by another process (another copy of SQLite)."""
    script = """
import json, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
print(json.dumps({
    "integrity": c.execute("PRAGMA integrity_check").fetchone()[0],
    "emails": [r[0] for r in c.execute("SELECT email FROM user")],
    "users": [r[0] for r in c.execute("SELECT id FROM user")],
    "cart": dict(c.execute("SELECT id, user_id FROM cart").fetchall()),
    "notes": dict(c.execute("SELECT id, value FROM notes").fetchall()),
}))
"""
    out = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def unlinked_files(path: Path) -> list[str]:
    """Files of this database this process still has open although they were deleted."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(path)) and target.endswith("(deleted)"):
            found.append(target)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc to find unlinked files")
@pytest.mark.parametrize("served_by", ["native", "fastapi"])
async def test_app_code_and_engine_share_one_sqlite_file(tmp_path, served_by):
    path = tmp_path / "app.db"
    # The app's tables, made by the app before the engine starts: a sqlite3 connection
    # opened and closed once was enough to lose every later write.
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE cart (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, item TEXT)")
    conn.execute("CREATE TABLE notes (id TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    conn.commit()
    conn.close()

    async def on_link(anonymous_user, new_user, ctx):
        await ctx.db.execute(
            "UPDATE cart SET user_id = ? WHERE user_id = ?", [new_user["id"], anonymous_user["id"]]
        )

    auth = init(
        KerniaOptions(
            database=f"sqlite:///{path}",
            secret=SECRET,
            base_url=BASE,
            email_and_password=EmailPasswordOptions(enabled=True),
            rate_limit=RateLimitOptions(enabled=False),
            plugins=[anonymous(on_link=on_link)],
        )
    )
    ledger = Ledger()
    server = None
    cart_engine = create_async_engine(
        f"sqlite+aiosqlite:///{path}", poolclass=NullPool, connect_args={"timeout": 30}
    )
    try:
        if served_by == "native":
            server = auth.start_server(port=0)

            def browser() -> Browser:
                return Browser(server.url)

            async def add_to_cart(b: Browser, guest_id: str, row: str) -> None:
                # App code of its own, beside the native server: sqlite3 in a thread.
                def insert() -> None:
                    c = sqlite3.connect(path, timeout=30)
                    c.execute("INSERT INTO cart (id, user_id, item) VALUES (?, ?, 'tea')", (row, guest_id))
                    c.commit()
                    c.close()

                await asyncio.to_thread(insert)

        else:
            app = FastAPI()
            app.mount("/api/auth", auth.router.mount())
            current = session_dependency(auth)

            @app.post("/cart/{row}")
            async def add(row: str, session=Depends(current)):
                async with cart_engine.begin() as c:
                    await c.execute(
                        text("INSERT INTO cart (id, user_id, item) VALUES (:id, :user, 'tea')"),
                        {"id": row, "user": session["user"]["id"]},
                    )
                return {"ok": True}

            def browser() -> Browser:
                return Browser(app)

            async def add_to_cart(b: Browser, guest_id: str, row: str) -> None:
                r = await b.client.post(f"/cart/{row}")
                assert r.status_code == 200, r.text

        async def convert(i: int) -> None:
            b = browser()
            try:
                r = await b.post("/sign-in/anonymous", {})
                assert r.status_code == 200, r.text
                guest_id = r.json()["user"]["id"]
                await add_to_cart(b, guest_id, f"cart-{i}")
                email = f"convert{i}@example.com"
                r = await b.sign_up(email)
                assert r.status_code == 200, r.text
                ledger.add("emails", email)
                ledger.add("conversions", (guest_id, r.json()["user"]["id"], f"cart-{i}"))
            finally:
                await b.aclose()

        async def sign_up(i: int) -> None:
            b = browser()
            try:
                r = await b.sign_up(f"plain{i}@example.com")
                assert r.status_code == 200, r.text
                ledger.add("emails", f"plain{i}@example.com")
            finally:
                await b.aclose()

        async def guests() -> None:
            b = browser()
            try:
                for _ in range(GUEST_SIGN_INS):
                    b.cookies.clear()
                    b.client.cookies.clear()
                    r = await b.post("/sign-in/anonymous", {})
                    assert r.status_code == 200, r.text
                    ledger.add("guests", r.json()["user"]["id"])
            finally:
                await b.aclose()

        await asyncio.gather(
            *(convert(i) for i in range(GUESTS)),
            *(sign_up(i) for i in range(SIGN_UPS)),
            guests(),
            asyncio.to_thread(app_sqlite3, path, ledger, "sqlite3"),
            asyncio.to_thread(app_sqlalchemy, path, ledger, "sqlalchemy"),
            app_aiosqlite(path, ledger, "aiosqlite"),
        )
        assert unlinked_files(path) == []
    finally:
        await cart_engine.dispose()
        if server is not None:
            server.stop()
        auth.close()

    seen = read_back(path)
    assert seen["integrity"] == "ok"
    assert sorted(set(ledger.emails) - set(seen["emails"])) == []
    users = set(seen["users"])
    assert set(ledger.guests) <= users  # guest sign-ins that were not converted
    for guest_id, new_id, row in ledger.conversions:
        assert guest_id not in users and new_id in users
        assert seen["cart"][row] == new_id
    assert {k: seen["notes"].get(k) for k in ledger.app_rows} == ledger.app_rows
    assert len(ledger.app_rows) == 3 * APP_OPS
