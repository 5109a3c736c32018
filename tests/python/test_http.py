"""Routing, bodies, origin/CSRF checks and rate limiting (spec §1, §12, §13)."""

from __future__ import annotations

import pytest

from kernia import RateLimitOptions, RateLimitRule

from conftest import set_cookies


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/auth/nope"),
        ("GET", "/api/auth/sign-up/email"),  # wrong method
        ("PUT", "/api/auth/sign-out"),
        ("POST", "/api/auth/sign-up/email/"),  # trailing slash
        ("POST", "/api/auth//sign-up/email"),
        ("GET", "/elsewhere/get-session"),  # outside the base path
        ("GET", "/api/auth"),
    ],
)
async def test_unknown_routes_are_404_with_an_empty_body(env, browser_for, method, path):
    b = browser_for(env.make(), base_path="")
    r = await b.request(method, path, json={} if method != "GET" else None)
    assert r.status_code == 404 and r.content == b""


async def test_malformed_json_is_400_and_changes_nothing(env, browser_for):
    b = browser_for(env.make())
    r = await b.post(
        "/sign-up/email", content=b'{"name": "A", "email":', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json() == {"code": "BAD_REQUEST", "message": "Invalid JSON in request body"}
    assert env.db.count("user") == 0


async def test_wrong_content_type_is_415(env, browser_for):
    b = browser_for(env.make())
    r = await b.post("/sign-up/email", content=b"name=A", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    body = r.json()
    assert body["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert body["message"].startswith('Content-Type "text/plain" is not allowed.')
    r = await b.post(
        "/sign-out", content=b"a=b", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 200  # sign-out ignores its body


async def test_missing_content_type_is_415(env, browser_for):
    b = browser_for(env.make())
    r = await b.post("/sign-in/email", content=b'{"email":"a@b.co","password":"x"}')
    assert r.status_code == 415 and r.json()["message"].startswith("Content-Type is required.")


async def test_body_over_one_mebibyte_is_413_and_changes_nothing(env, browser_for):
    b = browser_for(env.make())
    big = {"name": "A" * (1024 * 1024), "email": "big@example.com", "password": "password123"}
    r = await b.post("/sign-up/email", big)
    assert r.status_code == 413
    assert r.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert env.db.count("user") == 0


async def test_body_just_under_the_limit_is_read(env, browser_for):
    b = browser_for(env.make())
    padding = "x" * (1024 * 1024 - 200)
    r = await b.post(
        "/sign-up/email",
        {"name": "A", "email": "fits@example.com", "password": "password123", "pad": padding},
    )
    assert r.status_code == 200


async def test_cookie_bearing_post_from_an_untrusted_origin_is_403(env, browser_for):
    auth = env.make()
    b = browser_for(auth)
    await b.sign_up()
    b.origin = "https://evil.example.net"
    before = env.db.snapshot()
    r = await b.post("/sign-out", {})
    assert r.status_code == 403 and r.json() == {"code": "INVALID_ORIGIN", "message": "Invalid origin"}
    assert env.db.snapshot() == before
    b.origin = None
    r = await b.post("/sign-out", {})
    assert r.status_code == 403 and r.json()["code"] == "MISSING_OR_NULL_ORIGIN"
    b.origin = "null"
    assert (await b.post("/sign-out", {})).json()["code"] == "MISSING_OR_NULL_ORIGIN"
    # A Referer from a trusted origin stands in for Origin.
    b.origin = None
    r = await b.post("/sign-out", {}, headers={"referer": "http://localhost:3000/account"})
    assert r.status_code == 200


async def test_trusted_origins_are_accepted(env, browser_for):
    auth = env.make(trusted_origins=["https://app.example.com", "https://*.preview.example.com"])
    b = browser_for(auth)
    await b.sign_up()
    for origin in ("https://app.example.com", "https://pr-7.preview.example.com"):
        b.origin = origin
        assert (await b.get("/get-session")).status_code == 200
        assert (
            await b.post("/sign-in/email", {"email": "ada@example.com", "password": "correct-horse"})
        ).status_code == 200


async def test_cors_origins_let_another_origins_page_call_with_cookies(env, browser_for):
    """A page on http://localhost:5173 calling auth routes served on another port: preflights
    and answers carry the exact origin and credentials; the origin is trusted for POSTs."""
    auth = env.make(cors_origins=["http://localhost:5173"])
    b = browser_for(auth, origin="http://localhost:5173")
    preflight = await b.request(
        "OPTIONS",
        "/sign-up/email",
        headers={"access-control-request-method": "POST", "access-control-request-headers": "content-type"},
    )
    assert preflight.status_code == 204 and preflight.content == b""
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert preflight.headers["access-control-allow-headers"] == "content-type"
    assert set(preflight.headers["access-control-allow-methods"].split(", ")) == {"GET", "POST"}
    r = await b.sign_up()
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert r.headers["access-control-allow-credentials"] == "true"
    assert "origin" in r.headers["vary"].lower()
    r = await b.get("/get-session")
    assert r.json()["user"]["email"] == "ada@example.com"
    assert r.headers["access-control-allow-origin"] == "http://localhost:5173"
    # An error is readable by the page too.
    r = await b.post("/sign-in/email", {"email": "ada@example.com", "password": "wrong-password"})
    assert r.status_code == 401 and r.headers["access-control-allow-origin"] == "http://localhost:5173"


@pytest.mark.parametrize("origin", ["http://localhost:5174", "https://localhost:5173", "null"])
async def test_cors_answers_nothing_to_other_origins(env, browser_for, origin):
    auth = env.make(cors_origins=["http://localhost:5173"])
    b = browser_for(auth, origin=origin)
    preflight = await b.request(
        "OPTIONS", "/sign-up/email", headers={"access-control-request-method": "POST"}
    )
    assert preflight.status_code == 404
    assert "access-control-allow-origin" not in preflight.headers
    r = await b.get("/get-session")
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    assert (await b.sign_up()).status_code == 403  # not trusted either


async def test_without_cors_origins_nothing_is_added(env, browser_for):
    b = browser_for(env.make(), origin="http://localhost:5173")
    preflight = await b.request(
        "OPTIONS", "/sign-up/email", headers={"access-control-request-method": "POST"}
    )
    assert preflight.status_code == 404
    r = await b.get("/get-session")
    assert not any(h.startswith("access-control-") for h in r.headers)
    assert "vary" not in r.headers


async def test_get_requests_skip_the_origin_check(env, browser_for):
    b = browser_for(env.make())
    await b.sign_up()
    b.origin = "https://evil.example.net"
    assert (await b.session())["user"]["email"] == "ada@example.com"


async def test_login_csrf_is_blocked_without_cookies(env, browser_for):
    b = browser_for(env.make(), origin="https://evil.example.net")
    r = await b.sign_up()
    assert r.status_code == 403 and r.json()["code"] == "INVALID_ORIGIN"
    b.origin = None
    form = {"name": "Ada", "email": "ada@example.com", "password": "correct-horse"}
    r = await b.post(
        "/sign-up/email", form, headers={"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"}
    )
    assert r.status_code == 403 and r.json()["code"] == "CROSS_SITE_NAVIGATION_LOGIN_BLOCKED"
    assert env.db.count("user") == 0
    # Server-to-server callers without Origin or fetch metadata are allowed.
    assert (await b.sign_up()).status_code == 200


@pytest.mark.parametrize("disabled", [False, True])
async def test_csrf_check_can_be_disabled(env, browser_for, disabled):
    # A cookie-carrying POST from an untrusted origin: refused, unless the check is off.
    auth = env.make(advanced={"disable_csrf_check": True} if disabled else {})
    b = browser_for(auth)
    assert (await b.sign_up()).status_code == 200
    b.origin = "https://evil.example.net"
    r = await b.post("/sign-out", {})
    if disabled:
        assert r.status_code == 200 and env.db.count("session") == 0
    else:
        assert (r.status_code, r.json()["code"]) == (403, "INVALID_ORIGIN")
        assert env.db.count("session") == 1


async def test_https_base_url_uses_secure_prefixed_cookies(env, browser_for):
    auth = env.make(base_url="https://auth.example.com", trusted_origins=["http://localhost:3000"])
    b = browser_for(auth)
    r = await b.sign_up()
    cookie = set_cookies(r)["__Secure-better-auth.session_token"]
    assert cookie.endswith("; Path=/; HttpOnly; Secure; SameSite=Lax")
    assert (await b.session())["user"]["email"] == "ada@example.com"
    # The plain name is not read when cookies are secure.
    b.cookies = {"better-auth.session_token": b.cookies["__Secure-better-auth.session_token"]}
    assert await b.session() is None


async def test_rate_limit_on_sign_in_returns_429_with_retry_after(env, browser_for):
    b = browser_for(env.make(rate_limit=RateLimitOptions(enabled=True)))
    statuses = [
        (await b.sign_in(email="x@example.com", password="password123")).status_code for _ in range(4)
    ]
    assert statuses == [401, 401, 401, 429]
    r = await b.sign_in(email="x@example.com", password="password123")
    assert r.status_code == 429
    assert r.json() == {"message": "Too many requests. Please try again later."}
    assert 1 <= int(r.headers["x-retry-after"]) <= 10
    assert r.headers["retry-after"] == r.headers["x-retry-after"]  # the standard header too
    assert r.headers["content-type"] == "application/json"
    # Other paths have their own buckets.
    assert (await b.get("/get-session")).status_code == 200


async def test_rate_limit_custom_rules(env, browser_for):
    b = browser_for(
        env.make(
            rate_limit=RateLimitOptions(
                enabled=True,
                custom_rules={"/get-session": RateLimitRule(window=60, max=2), "/sign-in/*": None},
            )
        )
    )
    assert [(await b.get("/get-session")).status_code for _ in range(3)] == [200, 200, 429]
    assert all([(await b.sign_in(password="password123")).status_code == 401 for _ in range(5)])
