"""The example shop (examples/shop) in headless Chromium, driven by tests/js/shop-browser.mjs:
a guest fills the cart and converts by sign-up, by a magic link opened in the page, and
by a passkey (the DevTools virtual authenticator), with the auth routes mounted in the
app and on the native server, on SQLite and PostgreSQL. Screenshots of every end state
are kept in test-artifacts/browser/ (or $KERNIA_TEST_ARTIFACTS)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import free_port
from test_js_client import node_client  # noqa: F401  (the npm packages, installed once)

from conftest import POSTGRES_URL, Database, database_url, skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "tests" / "js"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
#: The end states each scenario keeps a picture of.
SCREENSHOTS = {
    "sign-up": ["sign-up"],
    "magic-link": ["magic-link-sent", "magic-link"],
    "passkey": ["passkey-upgraded", "passkey-signed-in", "passkey-converted"],
}
ARTIFACTS = Path(os.environ.get("KERNIA_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "browser"


@pytest.fixture(scope="session")
def chromium() -> str:
    if not Path(CHROMIUM).is_file():
        skip_or_fail(
            f"Chromium is needed for the browser tests ({CHROMIUM}; Debian: apt-get install chromium)"
        )
    return CHROMIUM


@pytest.fixture(scope="session")
def shop_page() -> Path:
    """The shop's page script, built by the example's own setup step."""
    if shutil.which("npm") is None:
        skip_or_fail("Node.js and npm are needed to build the shop's page")
    sys.path.insert(0, str(ROOT))
    try:
        from examples.shop.build import ensure_built
    finally:
        sys.path.remove(str(ROOT))
    return ensure_built(quiet=True)


class Shop:
    def __init__(self, proc: subprocess.Popen, url: str, db: Database) -> None:
        self.proc, self.url, self.db = proc, url, db


def _wait_for(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"the shop exited {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}"
            )
        try:
            with urllib.request.urlopen(url + "/api/products", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"the shop did not answer at {url}")


@pytest.fixture(scope="module", params=["mounted", "native"])
def transport(request) -> str:
    return request.param


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def shop(request, transport, shop_page, tmp_path_factory) -> Iterator[Shop]:
    """`python -m examples.shop`, as its README runs it, on a database of its own."""
    backend = request.param
    if backend == "postgres" and not POSTGRES_URL:
        database_url(backend, None)  # skips, or fails under CI
    folder = tmp_path_factory.mktemp(f"shop-{transport}-{backend}")
    database = database_url(backend, folder, "shop.db")
    port = free_port()
    args = ["--port", str(port), "--database", database, "--skip-build"]
    if transport == "native":
        args += ["--native", "--auth-port", str(free_port())]
    proc = subprocess.Popen(
        [sys.executable, "-m", "examples.shop", *args],
        cwd=ROOT,
        env={**os.environ, "KERNIA_SECRET": "shop-test-secret-0123456789abcdef0123"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://localhost:{port}"
    try:
        _wait_for(url, proc)
        yield Shop(proc, url, Database(backend, database))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run_scenario(shop: Shop, scenario: str, request) -> dict[str, str]:
    name = request.node.callspec.id.replace("/", "-")
    artifacts = ARTIFACTS / f"{scenario}-{name}"
    done = subprocess.run(
        [
            "node",
            "shop-browser.mjs",
            shop.url,
            scenario,
            str(artifacts),
            f"{os.getpid()}{time.monotonic_ns()}",
        ],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "CHROMIUM": CHROMIUM},
    )
    assert done.returncode == 0 and "all passed" in done.stdout, done.stdout + done.stderr
    for png in SCREENSHOTS[scenario]:
        assert (artifacts / f"{png}.png").stat().st_size > 0, png
    line = next(line for line in done.stdout.splitlines() if line.startswith("facts: "))
    return json.loads(line.removeprefix("facts: "))


def cart(shop: Shop, user_id: str) -> dict[str, int]:
    rows = shop.db.rows("SELECT sku, quantity FROM shop_cart_item WHERE user_id = ?", user_id)
    return dict(rows)


def test_a_guest_signs_up_and_keeps_the_cart(node_client, chromium, shop, request):  # noqa: F811
    facts = run_scenario(shop, "sign-up", request)
    shop.db.assert_gone(facts["guest"])
    assert cart(shop, facts["guest"]) == {}
    # The cart moved with the conversion, then the member checked out.
    [(items, total)] = shop.db.rows(
        "SELECT items, total_cents FROM shop_order WHERE user_id = ?", facts["user"]
    )
    assert sorted((i["sku"], i["quantity"]) for i in json.loads(items)) == [("mug", 1), ("tea", 2)]
    assert total == 2 * 850 + 1400


def test_a_guest_opens_a_magic_link_in_the_page(node_client, chromium, shop, request):  # noqa: F811
    facts = run_scenario(shop, "magic-link", request)
    shop.db.assert_gone(facts["guest"])
    assert cart(shop, facts["user"]) == {"kettle": 1}
    [(anonymous,)] = shop.db.rows('SELECT "isAnonymous" FROM "user" WHERE id = ?', facts["user"])
    assert not anonymous


def test_passkeys_upgrade_a_guest_sign_in_and_convert_another(node_client, chromium, shop, request):  # noqa: F811
    facts = run_scenario(shop, "passkey", request)
    shop.db.assert_gone(facts["guest"])
    [(anonymous,)] = shop.db.rows('SELECT "isAnonymous" FROM "user" WHERE id = ?', facts["user"])
    assert not anonymous
    assert shop.db.rows('SELECT COUNT(*) FROM "passkey" WHERE "userId" = ?', facts["user"]) == [(1,)]
    assert cart(shop, facts["user"]) == {"honey": 1, "tea": 1}
