"""`kernia serve` as the README describes it: its defaults, --secret, --host,
--magic-link-outbox -, and the KERNIA_DATABASE_URL / KERNIA_BASE_URL variables."""

from __future__ import annotations

import json
import socket
import sqlite3
from urllib.parse import urlsplit

import httpx
import pytest
from helpers import free_port, kernia_serve

from conftest import skip_or_fail

UNSET = {"KERNIA_SECRET": "", "KERNIA_DATABASE_URL": "", "KERNIA_BASE_URL": ""}


def _clean_env(monkeypatch, **values: str) -> None:
    """The server process sees only the KERNIA_ variables the test sets."""
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def _sign_up(api: str, email: str = "ada@example.com", origin: str | None = None) -> httpx.Response:
    body = {"name": "Ada", "email": email, "password": "correct-horse"}
    r = httpx.post(f"{api}/sign-up/email", json=body, headers={"origin": origin} if origin else {})
    assert r.status_code == 200, r.text
    return r


def _session(api: str, cookie: str, name: str = "better-auth.session_token"):
    return httpx.get(f"{api}/get-session", cookies={name: cookie}).json()


def _users(path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute('SELECT "email" FROM "user"')]


def test_serve_defaults(tmp_path, monkeypatch):
    """No flags: port 8000 on 127.0.0.1, sqlite:///kernia.db in the working directory,
    email and password on, its own origin trusted, a random secret (said on stderr)."""
    _clean_env(monkeypatch)
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 8000)) == 0:
            skip_or_fail("port 8000, kernia serve's default, is taken on this machine")
    with kernia_serve(cwd=tmp_path, listen=("127.0.0.1", 8000), secret=None) as server:
        assert "using a random one" in server.line_with("no --secret or KERNIA_SECRET")
        serving = server.line_with("serving")
        assert "http://127.0.0.1:8000/api/auth on sqlite:///kernia.db (the native server)" in serving
        cookie = _sign_up(server.api).cookies["better-auth.session_token"]
        # The default base URL's origin is trusted for cookie-carrying requests; others are not.
        cookies = {"better-auth.session_token": cookie}
        evil = httpx.post(
            f"{server.api}/sign-out", cookies=cookies, headers={"origin": "https://evil.example"}
        )
        assert (evil.status_code, evil.json()["code"]) == (403, "INVALID_ORIGIN")
        own = httpx.post(f"{server.api}/sign-out", cookies=cookies, headers={"origin": server.url})
        assert own.status_code == 200 and own.json() == {"success": True}
        cookie = _sign_up(server.api, "bob@example.com").cookies["better-auth.session_token"]
        assert _session(server.api, cookie)["user"]["email"] == "bob@example.com"
        assert server.stop() == 0
    assert _users(tmp_path / "kernia.db") == ["ada@example.com", "bob@example.com"]
    # The random secret died with the process: the same database, a new secret, no session.
    with kernia_serve(cwd=tmp_path, listen=("127.0.0.1", 8000), secret=None) as server:
        assert _session(server.api, cookie) is None


def test_secret_flag_and_variable_keep_sessions_across_restarts(tmp_path, monkeypatch):
    _clean_env(monkeypatch)
    db = ["--database", f"sqlite:///{tmp_path / 'a.db'}"]
    with kernia_serve(*db, "--secret", "flag-secret-0123456789abcdef0123456", secret=None) as server:
        cookie = _sign_up(server.api).cookies["better-auth.session_token"]
    with kernia_serve(*db, "--secret", "flag-secret-0123456789abcdef0123456", secret=None) as server:
        assert _session(server.api, cookie)["user"]["email"] == "ada@example.com"
    monkeypatch.setenv("KERNIA_SECRET", "flag-secret-0123456789abcdef0123456")
    with kernia_serve(*db, secret=None) as server:
        assert _session(server.api, cookie)["user"]["email"] == "ada@example.com"
    # The flag wins over the variable.
    with kernia_serve(*db, "--secret", "another-secret-0123456789abcdef01234", secret=None) as server:
        assert _session(server.api, cookie) is None


def test_host_flag(tmp_path):
    port = free_port()
    args = ["--database", f"sqlite:///{tmp_path / 'a.db'}", "--host", "127.0.0.2", "--port", str(port)]
    with kernia_serve(*args, listen=("127.0.0.2", port)) as server:
        assert f"serving http://127.0.0.2:{port}/api/auth" in server.line_with("serving")
        assert httpx.get(f"{server.api}/ok").json() == {"ok": True}
        with socket.socket() as other:
            assert other.connect_ex(("127.0.0.1", port)) != 0, "it listens on 127.0.0.1 too"


def test_magic_link_outbox_dash_prints_each_link(tmp_path):
    args = ["--database", f"sqlite:///{tmp_path / 'a.db'}", "--magic-link-outbox", "-", "--no-rate-limit"]
    with kernia_serve(*args, cwd=tmp_path) as server:
        r = httpx.post(f"{server.api}/sign-in/magic-link", json={"email": "ada@example.com"})
        assert r.status_code == 200 and r.json() == {"status": True}
        line = server.line_with("kernia: magic link")
        sent = json.loads(line.removeprefix("kernia: magic link "))
        assert sent["email"] == "ada@example.com" and len(sent["token"]) >= 32
        assert sent["url"].startswith(f"{server.url}/api/auth/magic-link/verify?token={sent['token']}")
        verified = httpx.get(sent["url"])
        assert verified.status_code == 302 and "better-auth.session_token" in verified.cookies
        assert not (tmp_path / "-").exists()


def test_database_and_base_url_from_the_environment(tmp_path, monkeypatch):
    _clean_env(
        monkeypatch,
        KERNIA_DATABASE_URL=f"sqlite:///{tmp_path / 'from-env.db'}",
        KERNIA_BASE_URL="https://auth.example.com",
        KERNIA_SECRET="env-secret-0123456789abcdef012345678",
    )
    with kernia_serve("--magic-link-outbox", "-", "--no-rate-limit", secret=None) as server:
        assert "https://auth.example.com/api/auth on sqlite:///" in server.line_with("serving")
        r = _sign_up(server.api, origin="https://auth.example.com")
        # An https base URL makes the cookies Secure and __Secure- prefixed.
        [cookie] = [c for c in r.headers.get_list("set-cookie") if "session_token" in c]
        assert cookie.startswith("__Secure-better-auth.session_token=") and "; Secure" in cookie
        httpx.post(f"{server.api}/sign-in/magic-link", json={"email": "bob@example.com"})
        sent = json.loads(server.line_with("kernia: magic link").removeprefix("kernia: magic link "))
        assert urlsplit(sent["url"])[:3] == ("https", "auth.example.com", "/api/auth/magic-link/verify")
    assert _users(tmp_path / "from-env.db") == ["ada@example.com"]
    # Flags win over the variables.
    flags = ["--database", f"sqlite:///{tmp_path / 'flag.db'}", "--base-url", "http://127.0.0.1:1"]
    with kernia_serve(*flags, secret=None) as server:
        assert "http://127.0.0.1:1/api/auth on sqlite:///" in server.line_with("serving")
        _sign_up(server.api, "carol@example.com")
    assert _users(tmp_path / "flag.db") == ["carol@example.com"]
    assert _users(tmp_path / "from-env.db") == ["ada@example.com"]


@pytest.mark.parametrize("flag", ["--port", "--database"])
def test_serve_refuses_a_flag_without_its_value(flag):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "kernia.cli", "serve", flag], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and f"argument {flag}: expected one argument" in done.stderr


def test_mail_outbox_prints_every_mail(tmp_path):
    args = ["--database", f"sqlite:///{tmp_path / 'a.db'}", "--mail-outbox", "-", "--no-rate-limit"]
    args += ["--require-email-verification", "--delete-user"]
    with kernia_serve(*args) as server:
        body = {"name": "Ada", "email": "ada@example.com", "password": "correct-horse"}
        assert httpx.post(f"{server.api}/sign-up/email", json=body).json()["token"] is None
        verify = json.loads(server.line_with('"kind": "verify-email"').removeprefix("kernia: mail "))
        assert verify["email"] == "ada@example.com" and "/verify-email?token=" in verify["url"]
        signed_in = httpx.get(verify["url"], follow_redirects=False)
        assert signed_in.status_code == 302
        httpx.post(f"{server.api}/request-password-reset", json={"email": "ada@example.com"})
        reset = json.loads(server.line_with('"kind": "reset-password"').removeprefix("kernia: mail "))
        assert "/reset-password/" in reset["url"]
        # Magic links go to the same outbox.
        httpx.post(f"{server.api}/sign-in/magic-link", json={"email": "grace@example.com"})
        assert "grace@example.com" in server.line_with("kernia: magic link")


def test_require_email_verification_needs_somewhere_to_send_the_links():
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "kernia.cli", "serve", "--require-email-verification"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "--require-email-verification needs --mail-outbox" in done.stderr


def test_email_codes_and_metrics_from_the_console(tmp_path):
    args = ["--database", f"sqlite:///{tmp_path / 'a.db'}", "--mail-outbox", "-", "--no-rate-limit"]
    with kernia_serve(*args, "--email-otp", "--metrics") as server:
        sent = httpx.post(
            f"{server.api}/email-otp/send-verification-otp",
            json={"email": "ada@example.com", "type": "sign-in"},
        )
        assert sent.json() == {"success": True}
        code = json.loads(server.line_with('"kind": "email-otp"').removeprefix("kernia: code "))
        assert code["email"] == "ada@example.com" and code["type"] == "sign-in"
        signed = httpx.post(
            f"{server.api}/sign-in/email-otp", json={"email": "ada@example.com", "otp": code["otp"]}
        )
        assert signed.status_code == 200
        page = httpx.get(f"{server.url}/metrics").text
        assert 'kernia_http_requests_total{method="POST",route="/sign-in/email-otp",status="200"} 1' in page
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "kernia.cli", "serve", "--email-otp"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "--email-otp needs --mail-outbox" in done.stderr
