"""Sessions and rate-limit counters in Redis (``KerniaOptions(secondary_storage=...)``):
session checks read a copy there, everything that ends or changes a session or a user
drops the copies, and Redis going away and coming back loses no sign-in.

Each test runs a `redis-server` of its own on a free port, so that it can stop it."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from helpers import free_port
from kernia_redis_storage import RedisStorage, redis_storage

from kernia import ConfigurationError, RateLimitOptions
from kernia.plugins import anonymous

from conftest import set_cookies, skip_or_fail


class RedisServer:
    """A `redis-server` that keeps nothing on disk, stopped and started at will."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        cmd = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.proc = subprocess.Popen(
            [*cmd, "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while self.cli("PING") != "PONG":
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, timeout=10
        )
        return done.stdout.strip()

    def keys(self, pattern: str) -> list[str]:
        return [k for k in self.cli("--scan", "--pattern", pattern).splitlines() if k]


@pytest.fixture
def redis_server(tmp_path):
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        skip_or_fail("redis-server is needed for the secondary-storage tests")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


async def test_session_checks_read_a_copy_in_redis(env, browser_for, redis_server):
    auth = env.make(secondary_storage=redis_server.url)
    b = browser_for(auth)
    await b.sign_up()
    assert redis_server.keys("kernia:session:*") == []
    first = await b.session()
    [key] = redis_server.keys("kernia:session:*")
    # The copy holds no usable credential: not the token, nor the token as its key.
    token = b.cookies["better-auth.session_token"].split(".")[0]
    assert token not in key and token not in redis_server.cli("GET", key)
    assert 0 < int(redis_server.cli("PTTL", key)) <= 7 * 86400 * 1000
    # The copy answers: a row deleted behind the engine's back is not seen.
    env.db.execute('DELETE FROM "session"')
    assert await b.session() == first
    assert (await auth.api.get_session({"cookie": b.headers()["cookie"]}))["user"][
        "email"
    ] == "ada@example.com"


async def test_sign_out_and_revocations_end_the_copies_at_once(env, browser_for, redis_server):
    auth = env.make(secondary_storage=redis_server.url)
    laptop, phone = browser_for(auth), browser_for(auth)
    await laptop.sign_up()
    await phone.sign_in()
    assert await laptop.session() and await phone.session()
    assert len(redis_server.keys("kernia:session:*")) == 2
    r = await laptop.post("/revoke-other-sessions")
    assert r.status_code == 200
    assert await phone.session() is None
    old = dict(laptop.cookies)
    assert (await laptop.post("/sign-out")).status_code == 200
    laptop.cookies = old
    assert await laptop.session() is None
    assert redis_server.keys("kernia:session:*") == []


async def test_a_changed_user_is_read_again(env, browser_for, redis_server):
    auth = env.make(secondary_storage=redis_server.url, plugins=[anonymous()])
    b = browser_for(auth)
    guest = await b.sign_in_as_guest()
    assert (await b.session())["user"]["isAnonymous"] is True
    r = await b.post(
        "/anonymous/upgrade", {"email": "ada@example.com", "password": "correct-horse", "name": "A"}
    )
    assert r.status_code == 200, r.text
    user = (await b.session())["user"]
    assert (user["id"], user["isAnonymous"]) == (guest["id"], False)
    assert (await b.post("/update-user", {"name": "Ada Lovelace"})).status_code == 200
    assert (await b.session())["user"]["name"] == "Ada Lovelace"


async def test_a_converted_guests_old_cookie_is_signed_out(env, browser_for, redis_server):
    auth = env.make(secondary_storage=redis_server.url, plugins=[anonymous()])
    b = browser_for(auth)
    await b.sign_in_as_guest()
    guest_cookies = dict(b.cookies)
    assert (await b.session())["user"]["isAnonymous"] is True
    assert (await b.sign_up()).status_code == 200
    assert (await b.session())["user"]["email"] == "ada@example.com"
    b.cookies = guest_cookies
    assert await b.session() is None


async def test_redis_going_away_and_coming_back(env, browser_for, redis_server):
    auth = env.make(secondary_storage=redis_server.url)
    b = browser_for(auth)
    await b.sign_up()
    signed_in = await b.session()
    redis_server.stop()

    # Checks read the database; sign-ins work.
    assert await b.session() == signed_in
    other = browser_for(auth)
    r = await other.sign_up(email="bob@example.com")
    assert r.status_code == 200
    assert (await other.session())["user"]["email"] == "bob@example.com"
    # Ending a session needs Redis (a copy would outlive it): refused, nothing written.
    r = await b.post("/sign-out")
    assert r.status_code == 503 and r.json()["code"] == "SECONDARY_STORAGE_UNAVAILABLE"
    assert "set-cookie" not in r.headers and r.headers["retry-after"]
    assert await b.session() == signed_in

    redis_server.start()
    # The engine probes Redis in the background and uses it again once it answers: the
    # session made during the outage is read from the database and copied.
    deadline = time.monotonic() + 10
    while not redis_server.keys("kernia:session:*"):
        assert time.monotonic() < deadline, "the engine did not come back to Redis"
        assert (await other.session())["user"]["email"] == "bob@example.com"
        await asyncio.sleep(0.1)
    old = dict(b.cookies)
    r = await b.post("/sign-out")
    assert r.status_code == 200 and "Max-Age=0" in set_cookies(r)["better-auth.session_token"]
    b.cookies = old
    assert await b.session() is None


async def test_rate_limits_are_counted_together_in_redis(env, browser_for, redis_server):
    limits = RateLimitOptions(enabled=True, window=60, max=3)
    one = env.make(secondary_storage=redis_server.url, rate_limit=limits)
    two = env.make(secondary_storage=redis_server.url, rate_limit=limits)
    a, b = browser_for(one), browser_for(two)
    statuses = [(await x.get("/ok")).status_code for x in (a, b, a, b)]
    assert statuses == [200, 200, 200, 429]
    [key] = redis_server.keys("kernia:rate:*")
    assert key.endswith("|/ok")
    # Without Redis each process counts on its own, as with the in-memory store.
    redis_server.stop()
    assert (await a.get("/ok")).status_code == 200


async def test_kernias_redis_storage_is_read_for_its_settings(env, browser_for, redis_server):
    """The engine uses the database a Kernia storage's client names: the copies land there."""
    import redis.asyncio as redis_asyncio

    client = redis_asyncio.Redis(host="127.0.0.1", port=redis_server.port, db=2)
    # Kernia's own helper, with the client options Kernia forwards to redis.
    helper = await redis_storage(url=f"redis://127.0.0.1:{redis_server.port}/5", decode_responses=True)
    for storage, db in ((RedisStorage(client=client), "2"), (helper, "5")):
        b = browser_for(env.make(secondary_storage=storage))
        await b.sign_up(email=f"ada{db}@example.com")
        assert await b.session()
        assert redis_server.cli("-n", db, "--scan", "--pattern", "kernia:session:*")
    assert redis_server.keys("kernia:session:*") == []  # nothing in database 0
    await client.aclose()
    await helper.client.aclose()


def test_unreachable_or_unsupported_storages_are_refused(env):
    port = free_port()
    with pytest.raises(
        ConfigurationError, match=rf"secondary_storage redis://127.0.0.1:{port}/0: cannot be reached"
    ):
        env.make(secondary_storage=f"redis://127.0.0.1:{port}/0")
    with pytest.raises(ConfigurationError, match="must be a redis:// URL"):
        env.make(secondary_storage="memcached://127.0.0.1:11211")
    with pytest.raises(ConfigurationError, match="a storage written in Python is not supported"):
        env.make(secondary_storage=object())
    import redis.asyncio as redis_asyncio

    for client in (
        redis_asyncio.Redis(host="127.0.0.1", port=port, ssl=True),
        redis_asyncio.Redis(unix_socket_path="/run/redis.sock"),
    ):
        with pytest.raises(ConfigurationError, match="only Redis over TCP without TLS"):
            env.make(secondary_storage=RedisStorage(client=client))
    with pytest.raises(ConfigurationError, match="needs secondary_storage"):
        env.make(rate_limit=RateLimitOptions(storage="secondary-storage"))


@pytest.mark.parametrize("hooked", [False, True], ids=["bulk-delete", "before_delete"])
async def test_cleanup_drops_the_copies_and_waits_for_redis(env, browser_for, redis_server, hooked):
    from kernia import APIError
    from kernia.testing import advance_clock

    async def before_delete(user, ctx):
        pass

    options = {"max_age": 86400, **({"before_delete": before_delete} if hooked else {})}
    auth = env.make(secondary_storage=redis_server.url, plugins=[anonymous(**options)])

    async def stale_guest():
        b = browser_for(auth)
        await b.sign_in_as_guest()
        assert (await b.session())["user"]["isAnonymous"] is True  # copied to Redis
        advance_clock(auth, 86400 + 60)
        return b

    # A cleaned-up guest's copy goes with it.
    gone = await stale_guest()
    assert (await auth.api.cleanup_anonymous_users())["deleted"] == 1
    assert await gone.session() is None

    # Without Redis no guest can go (its copy would stay): refused, nothing deleted.
    await stale_guest()
    redis_server.stop()
    with pytest.raises(APIError) as refused:
        await auth.api.cleanup_anonymous_users()
    assert refused.value.code == "SECONDARY_STORAGE_UNAVAILABLE"
    assert env.db.count("user") == 1
    redis_server.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            report = await auth.api.cleanup_anonymous_users()
            break
        except APIError:
            assert time.monotonic() < deadline, "the engine did not come back to Redis"
            await asyncio.sleep(0.1)
    assert report["deleted"] == 1 and env.db.count("user") == 0
