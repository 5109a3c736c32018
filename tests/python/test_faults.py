"""Faults from below: PostgreSQL stopped and started again, a SQLite disk that fills up.
Requests answer fast with 503 ``DATABASE_UNAVAILABLE`` and ``Retry-After``, the cause is
logged once per episode, nothing acknowledged is lost, and service comes back on its own.

The PostgreSQL here is a cluster of the test's own (``initdb`` into a temporary folder,
run as the ``postgres`` user), so stopping it disturbs nothing else; the full disk is a
4 MiB tmpfs. Both need root, as CI and the development machines have."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import eventually, free_port

from kernia import APIError, EmailPasswordOptions, KerniaOptions, RateLimitOptions
from kernia.auth import init

from conftest import BASE, SECRET, skip_or_fail


class PrivatePostgres:
    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins or os.geteuid() != 0:
            skip_or_fail("needs PostgreSQL's server binaries and root (to run them as the postgres user)")
        self.bin = Path(bins[-1]).parent
        self.root = Path(tempfile.mkdtemp(prefix="kernia-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.port = free_port()
        self._as_postgres("mkdir", str(self.data), owner_dir=True)
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.start()

    def _as_postgres(self, *cmd: str, owner_dir: bool = False) -> None:
        if owner_dir:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *cmd], check=True, capture_output=True, timeout=120
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        log = str(self.root / "log")
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "start"
        )

    def stop(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_postgres():
    pg = PrivatePostgres()
    yield pg
    pg.remove()


def _options(url: str) -> KerniaOptions:
    return KerniaOptions(
        database=url,
        secret=SECRET,
        base_url=BASE,
        email_and_password=EmailPasswordOptions(enabled=True),
        rate_limit=RateLimitOptions(enabled=False),
        advanced={"database_timeout": 1},
    )


def _unavailable(r) -> bool:
    return (
        r.status_code == 503
        and r.json()["code"] == "DATABASE_UNAVAILABLE"
        and r.headers["retry-after"] == "2"
    )


async def test_postgres_stopped_and_started_again(private_postgres, browser_for, capfd):
    auth = init(_options(private_postgres.url))
    try:
        b = browser_for(auth)
        assert (await b.sign_up()).status_code == 200
        private_postgres.stop()
        for _ in range(4):
            started = time.monotonic()
            r = await b.sign_in()
            assert _unavailable(r), r.text
            assert time.monotonic() - started < 3
        r = await b.get("/get-session")
        assert _unavailable(r)
        # The server-side API raises the same error, as kernia.APIError.
        cookie = "; ".join(f"{k}={v}" for k, v in b.cookies.items())
        with pytest.raises(APIError) as raised:
            await auth.api.get_session({"cookie": cookie})
        assert (raised.value.status, raised.value.code) == (503, "DATABASE_UNAVAILABLE")
        err = capfd.readouterr().err
        assert err.count("the database is unavailable") == 1, err

        private_postgres.start()

        async def signed_in():
            return (await b.sign_in()).status_code == 200

        await eventually(signed_in, "service to come back", timeout=20)
        assert (await b.session())["user"]["email"] == "ada@example.com"
        log = ""

        async def logged_back():
            nonlocal log
            log += capfd.readouterr().err
            return "the database is available again" in log

        await eventually(logged_back, "the recovery to be logged", timeout=15)
    finally:
        auth.close()


@pytest.fixture
def small_disk():
    if os.geteuid() != 0:
        skip_or_fail("mounting a tmpfs needs root")
    where = Path(tempfile.mkdtemp(prefix="kernia-disk-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)], check=True)
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)
    shutil.rmtree(where, ignore_errors=True)


def _fill(where: Path) -> Path:
    """Takes every free block of the disk."""
    filler = where / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


async def test_sqlite_disk_full_and_freed_again(small_disk, browser_for, capfd):
    db_path = small_disk / "auth.db"
    auth = init(_options(f"sqlite:///{db_path}"))
    try:
        b = browser_for(auth)
        assert (await b.sign_up("first@example.com")).status_code == 200
        filler = _fill(small_disk)
        acknowledged = ["first@example.com"]
        statuses = []
        for i in range(40):
            r = await browser_for(auth).sign_up(f"u{i}@example.com")
            statuses.append(r.status_code)
            if r.status_code == 200:
                acknowledged.append(f"u{i}@example.com")
            else:
                assert _unavailable(r), r.text
        assert 503 in statuses
        assert capfd.readouterr().err.count("the database is unavailable") == 1

        filler.unlink()
        r = await browser_for(auth).sign_up("after@example.com")
        assert r.status_code == 200, r.text
        acknowledged.append("after@example.com")
    finally:
        auth.close()
    # Read from another process: every acknowledged account is there, the file is sound.
    script = (
        "import sqlite3, sys, json; c = sqlite3.connect(sys.argv[1]);"
        "print(json.dumps([c.execute('PRAGMA integrity_check').fetchone()[0],"
        " [r[0] for r in c.execute('SELECT email FROM user')]]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(db_path)], capture_output=True, text=True, check=True
    )
    integrity, emails = json.loads(out.stdout)
    assert integrity == "ok"
    assert set(acknowledged) <= set(emails)
