"""``auth.db``: the app's own SQL on the auth database, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading

import pytest
from helpers import cart_table, guest

from kernia import DatabaseError
from kernia.plugins.anonymous import anonymous


def sql(auth, text: str) -> str:
    """``?`` placeholders in the database's own dialect."""
    if auth.db.dialect == "sqlite":
        return text
    parts = text.split("?")
    return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))


async def test_statements_commit_on_their_own(env):
    auth = env.make()
    cart_table(env)
    assert await auth.db.execute(sql(auth, 'INSERT INTO "cart" VALUES (?, ?, ?)'), ["c1", "u1", "tea"]) == 1
    assert await auth.db.fetch_all(
        sql(auth, 'SELECT "id", "item" FROM "cart" WHERE "user_id" = ?'), ["u1"]
    ) == [{"id": "c1", "item": "tea"}]
    assert await auth.db.fetch_one(sql(auth, 'SELECT "item" FROM "cart" WHERE "id" = ?'), ["nope"]) is None
    assert env.db.rows('SELECT "item" FROM "cart"') == [("tea",)]
    assert auth.db.dialect == env.backend


async def test_a_transaction_commits_at_the_end_of_its_block(env):
    auth = env.make()
    cart_table(env)
    async with auth.db.transaction() as tx:
        await tx.execute(sql(auth, 'INSERT INTO "cart" VALUES (?, ?, ?)'), ["c1", "u1", "tea"])
        await tx.execute(sql(auth, 'INSERT INTO "cart" VALUES (?, ?, ?)'), ["c2", "u1", "jam"])
        # Its own writes are visible inside it, nobody else's view changes yet.
        assert len(await tx.fetch_all('SELECT * FROM "cart"')) == 2
        assert env.db.count("cart") == 0
    assert env.db.count("cart") == 2


async def test_an_exception_rolls_the_transaction_back(env):
    auth = env.make()
    cart_table(env)
    with pytest.raises(RuntimeError):
        async with auth.db.transaction() as tx:
            await tx.execute(sql(auth, 'INSERT INTO "cart" VALUES (?, ?, ?)'), ["c1", "u1", "tea"])
            raise RuntimeError("the app changed its mind")
    assert env.db.count("cart") == 0
    # A failing statement is a DatabaseError, and the transaction is rolled back too.
    with pytest.raises(DatabaseError):
        async with auth.db.transaction() as tx:
            await tx.execute(sql(auth, 'INSERT INTO "cart" VALUES (?, ?, ?)'), ["c1", "u1", "tea"])
            await tx.execute('INSERT INTO "no_such_table" VALUES (1)')
    assert env.db.count("cart") == 0
    with pytest.raises(DatabaseError):
        await tx.execute("SELECT 1")  # over
    with pytest.raises(TypeError, match="list or tuple"):
        await auth.db.execute("SELECT 1", "not a list")


async def test_a_transaction_is_isolated_from_a_concurrent_conversion(env, browser_for):
    """An open app transaction holds the rows it changed: a conversion moving them waits,
    then sees only what was committed (here nothing, as the transaction rolls back)."""
    started = threading.Event()

    async def on_link(anonymous_user, new_user, ctx):
        started.set()
        move = 'UPDATE "cart" SET "user_id" = ? WHERE "user_id" = ?'
        if ctx.db.dialect == "postgres":
            move = 'UPDATE "cart" SET "user_id" = $1 WHERE "user_id" = $2'
        await ctx.db.execute(move, [new_user["id"], anonymous_user["id"]])

    auth = env.make(plugins=[anonymous(on_link=on_link)])
    cart_table(env)
    b = browser_for(auth)
    guest_id = (await guest(b))["user"]["id"]
    await auth.db.execute(sql(auth, 'INSERT INTO "cart" VALUES (?, ?, ?)'), ["c1", guest_id, "tea"])

    tx = auth.db.transaction()
    await tx.__aenter__()
    await tx.execute(sql(auth, 'UPDATE "cart" SET "item" = ? WHERE "id" = ?'), ["changed", "c1"])
    conversion = asyncio.ensure_future(b.sign_up())
    assert await asyncio.to_thread(started.wait, 10)
    done, _ = await asyncio.wait({conversion}, timeout=1.0)
    assert not done, "the conversion did not wait for the app's transaction"
    await tx.__aexit__(RuntimeError, RuntimeError("rolled back"), None)
    r = await asyncio.wait_for(conversion, 20)
    assert r.status_code == 200, r.text
    new_id = r.json()["user"]["id"]
    assert env.db.rows('SELECT "user_id", "item" FROM "cart"') == [(new_id, "tea")]
