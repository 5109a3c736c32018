"""The official better-auth JavaScript client against a live server started with `kernia serve`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import free_port, kernia_serve

from conftest import database_url, skip_or_fail

JS = Path(__file__).resolve().parent.parent / "js"


@pytest.fixture(scope="session")
def node_client() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        skip_or_fail("Node.js and npm are needed for the JavaScript client tests")
    if not (JS / "node_modules" / "better-auth").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, timeout=600)
    return JS


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def outbox(tmp_path) -> Path:
    return tmp_path / "outbox.jsonl"


#: How the flows' servers run: the native server, uvicorn serving the ASGI app, and the
#: native server with Better Auth's cookie cache on (`session_data` answers get-session).
SERVED = {"native": [], "asgi": ["--asgi"], "native+cookie-cache": ["--cookie-cache"]}


@pytest.fixture(params=list(SERVED))
def live_server(request, backend, tmp_path, outbox):
    """`kernia serve` on the native server, or on uvicorn serving the ASGI app."""
    database = database_url(backend, tmp_path, "live.db")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    flags = ["--database", database, "--port", str(port), "--base-url", base, "--anonymous", "--username"]
    flags += ["--magic-link-outbox", str(outbox), "--no-rate-limit"]
    with kernia_serve(*flags, *SERVED[request.param], listen=("127.0.0.1", port)):
        yield base


def run_node(script: str, base: str, js: Path, *args: str) -> str:
    done = subprocess.run(["node", script, base, *args], cwd=js, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_email_flow_with_the_official_client(node_client, live_server):
    out = run_node("email-flow.mjs", live_server, node_client)
    assert "all passed" in out


def test_guest_conversion_with_the_official_client(node_client, live_server):
    out = run_node("anonymous-flow.mjs", live_server, node_client)
    assert "all passed" in out


def test_username_conversion_with_the_official_client(node_client, live_server):
    out = run_node("username-flow.mjs", live_server, node_client)
    assert "all passed" in out


def test_magic_link_conversion_with_the_official_client(node_client, live_server, outbox):
    out = run_node("magic-link-flow.mjs", live_server, node_client, str(outbox))
    assert "all passed" in out


@pytest.fixture(params=list(SERVED))
def account_server(request, backend, tmp_path, outbox):
    """`kernia serve` with every account route on and its mails in the outbox."""
    database = database_url(backend, tmp_path, "account.db")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    flags = ["--database", database, "--port", str(port), "--base-url", base, "--mail-outbox", str(outbox)]
    flags += ["--require-email-verification", "--change-email", "--delete-user", "--no-rate-limit"]
    with kernia_serve(*flags, *SERVED[request.param], listen=("127.0.0.1", port)):
        yield base


def test_an_account_page_with_the_official_client(node_client, account_server, outbox):
    out = run_node("account-flow.mjs", account_server, node_client, str(outbox))
    assert "all passed" in out


@pytest.fixture(params=["native", "asgi"])
def otp_server(request, backend, tmp_path, outbox):
    """An engine in this process with guests and email codes, served natively or by uvicorn,
    its codes in the outbox, so the test can move its clock."""
    import json
    import threading

    import uvicorn

    from kernia import KerniaOptions, RateLimitOptions
    from kernia.auth import init
    from kernia.plugins import anonymous, email_otp

    def send(data, ctx):
        with open(outbox, "a") as f:
            f.write(json.dumps(dict(data)) + "\n")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    auth = init(
        KerniaOptions(
            database=database_url(backend, tmp_path, "otp.db"),
            secret="otp-secret-0123456789abcdef0123456789",
            base_url=base,
            rate_limit=RateLimitOptions(enabled=False),
            plugins=[anonymous(), email_otp(send)],
        )
    )
    if request.param == "native":
        server = auth.start_server(port=port)
        yield base, auth
        server.stop()
    else:
        config = uvicorn.Config(auth.router.mount(), host="127.0.0.1", port=port, log_level="warning")
        served = uvicorn.Server(config)
        thread = threading.Thread(target=served.run, daemon=True)
        thread.start()
        from helpers import eventually_sync

        eventually_sync(lambda: served.started, "uvicorn to start")
        yield base, auth
        served.should_exit = True
        thread.join(timeout=10)
    auth.close()


def test_email_codes_with_the_official_client(node_client, otp_server, outbox):
    from kernia.testing import advance_clock

    base, auth = otp_server
    node = subprocess.Popen(
        ["node", "email-otp-flow.mjs", base, str(outbox)],
        cwd=node_client,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert node.stdin and node.stdout
    seen = []
    for line in node.stdout:
        seen.append(line)
        if line.startswith("ADVANCE "):
            advance_clock(auth, float(line.split()[1]))
            node.stdin.write("ok\n")
            node.stdin.flush()
    assert node.wait(timeout=120) == 0, "".join(seen)
    assert "all passed\n" in seen


def test_the_cookie_cache_is_shared_with_a_better_auth_server(node_client, backend, tmp_path):
    """A Better Auth 1.7.25 server (in Node, memory adapter) and `kernia serve --cookie-cache`
    with one secret: each answers get-session from the other's `session_data` cookie, and
    Better Auth's `getCookieCache` verifies ours."""
    secret = "interop-secret-0123456789abcdef0123456789"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    flags = ["--database", database_url(backend, tmp_path, "interop.db"), "--port", str(port)]
    flags += ["--base-url", base, "--cookie-cache", "--no-rate-limit"]
    with kernia_serve(*flags, listen=("127.0.0.1", port), secret=secret):
        out = run_node("cookie-cache-interop.mjs", base, node_client, secret)
    assert "all passed" in out
