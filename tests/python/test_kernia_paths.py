"""Kernia apps' imports and setups, on this package: Kernia's module paths, its memory
adapter and rate-limit store, and the router answering the paths under it directly."""

from __future__ import annotations

import httpx
import pytest

from kernia import ConfigurationError

from conftest import SECRET


def test_kernias_module_paths():
    import kernia
    from kernia.auth.rate_limit import InMemoryRateLimitStore
    from kernia.error import APIError
    from kernia.plugins import anonymous, email_and_password, magic_link, passkey, username
    from kernia.plugins.email_password import email_and_password as from_kernias_path
    from kernia.types.init_options import (
        EmailPasswordOptions,
        KerniaOptions,
        RateLimitOptions,
        SessionOptions,
    )

    assert from_kernias_path is email_and_password and APIError is kernia.APIError
    assert KerniaOptions is kernia.KerniaOptions and EmailPasswordOptions is kernia.EmailPasswordOptions
    assert RateLimitOptions is kernia.RateLimitOptions and SessionOptions is kernia.SessionOptions
    assert all(callable(p) for p in (anonymous, magic_link, passkey, username, InMemoryRateLimitStore))
    from kernia_passkey import passkey as kernias_passkey

    assert kernias_passkey is passkey
    from kernia.auth import AuthContext
    from kernia.db.schema import CORE_MODELS, USER_MODEL
    from kernia.types import context
    from kernia.types.adapter import Where

    assert kernia.Where is Where and kernia.AuthContext is AuthContext is context.AuthContext
    assert USER_MODEL is CORE_MODELS[0] and USER_MODEL.name == "user"
    with pytest.raises(AttributeError):
        _ = kernia.NoSuchName


async def test_memory_adapter_and_relative_paths_as_kernias_tests_use_them():
    from kernia_memory_adapter import memory_adapter

    from kernia.auth import init
    from kernia.auth.rate_limit import InMemoryRateLimitStore
    from kernia.plugins import email_and_password
    from kernia.types.init_options import KerniaOptions

    options = KerniaOptions(
        database=memory_adapter(),
        secret=SECRET,
        plugins=[email_and_password()],
        rate_limit_store=InMemoryRateLimitStore(),
    )
    with init(options) as auth:
        transport = httpx.ASGITransport(app=auth.router.mount())
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost:3000") as client:
            body = {"name": "Alice", "email": "alice@example.com", "password": "correcthorse"}
            # The router called directly answers the route paths as they are, and under base_path.
            r = await client.post("/sign-up/email", json=body)
            assert r.status_code == 200 and r.json()["user"]["email"] == "alice@example.com"
            cookie = r.cookies["better-auth.session_token"]
            for path in ("/get-session", "/api/auth/get-session"):
                got = await client.get(path, headers={"cookie": f"better-auth.session_token={cookie}"})
                assert got.json()["user"]["email"] == "alice@example.com", path
            assert (await client.get("/no-such-route")).status_code == 404
    # A new memory_adapter() is a new, empty database; engines given the same one share it.
    shared = options.database
    with init(
        KerniaOptions(database=memory_adapter(), secret=SECRET, plugins=[email_and_password()])
    ) as auth:
        assert await auth.api.count_users() == 0
    with init(KerniaOptions(database=shared, secret=SECRET, plugins=[email_and_password()])) as auth:
        assert await auth.api.count_users() == 1
        # Kernia's tests ask the adapter itself what is in the database.
        [user] = await shared.find_many(model="user", where=())
        assert user["email"] == "alice@example.com" and user["emailVerified"] is False
    with pytest.raises(RuntimeError, match="no engine uses this adapter yet"):
        await memory_adapter().find_many(model="user", where=())


def test_unsupported_databases_and_stores_are_refused_by_name():
    from kernia.auth import init
    from kernia.types.init_options import KerniaOptions

    with pytest.raises(TypeError, match=r"a SQLAlchemy engine; got object"):
        init(KerniaOptions(database=object(), secret=SECRET))

    class RedisStore:
        pass

    with pytest.raises(ConfigurationError, match="rate_limit_store: RedisStore is not supported"):
        init(KerniaOptions(database="sqlite::memory:", secret=SECRET, rate_limit_store=RedisStore()))


@pytest.mark.parametrize("framework", ["fastapi", "starlette"])
async def test_kernias_framework_integrations(framework):
    from kernia_memory_adapter import memory_adapter

    from kernia.auth import init
    from kernia.plugins import email_and_password
    from kernia.types.context import Session
    from kernia.types.init_options import KerniaOptions

    if framework == "fastapi":
        from fastapi import Depends, FastAPI
        from kernia_fastapi import get_session, mount_kernia, require_session

        app = FastAPI()

        @app.get("/me")
        async def me(session=Depends(require_session)) -> dict:
            return {"user_id": session.user_id, "is_record": isinstance(session, Session)}

        @app.get("/maybe-me")
        async def maybe_me(session=Depends(get_session)) -> dict:
            return {"signed_in": session is not None}
    else:
        from kernia_starlette import get_session, mount_kernia, require_session
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def me(request):
            session = await require_session(request)
            return JSONResponse({"user_id": session.user_id, "is_record": isinstance(session, Session)})

        async def maybe_me(request):
            return JSONResponse({"signed_in": await get_session(request) is not None})

        app = Starlette(routes=[Route("/me", me), Route("/maybe-me", maybe_me)])

    auth = init(KerniaOptions(database=memory_adapter(), secret=SECRET, plugins=[email_and_password()]))
    mount_kernia(app, auth)
    assert app.state.kernia is auth and auth.context.options.base_path == "/api/auth"
    headers = {"origin": "http://localhost:3000"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://localhost:3000", headers=headers
    ) as client:
        assert (await client.get("/me")).status_code == 401
        assert (await client.get("/maybe-me")).json() == {"signed_in": False}
        body = {"name": "X", "email": "x@example.com", "password": "correcthorse"}
        r = await client.post("/api/auth/sign-up/email", json=body)
        assert r.status_code == 200, r.text
        user_id = r.json()["user"]["id"]
        assert (await client.get("/maybe-me")).json() == {"signed_in": True}
        assert (await client.get("/me")).json() == {"user_id": user_id, "is_record": True}
        assert (await client.post("/api/auth/sign-out")).status_code == 200
        assert (await client.get("/me")).status_code == 401
    auth.close()


def test_kernias_session_and_user_records():
    from kernia.types.context import Session, User

    s = Session.from_json(
        {"id": "s1", "userId": "u1", "expiresAt": "2026-01-01T00:00:10.000Z", "token": "t", "ipAddress": None}
    )
    assert (s.id, s.user_id, s.expires_at, s.token, s.ip_address) == ("s1", "u1", 1767225610, "t", None)
    u = User.from_json(
        {"id": "u1", "email": "a@x.io", "emailVerified": True, "createdAt": "1970-01-01T00:01:00.000Z"}
    )
    assert (u.id, u.email, u.email_verified, u.created_at, u.updated_at) == ("u1", "a@x.io", True, 60, 0)


async def test_the_adapter_methods_on_the_engines_tables(env, browser_for):
    import time

    from kernia.types.adapter import SortBy, Where

    auth = env.make()
    adapter = auth.context.adapter
    b = browser_for(auth)
    user_id = (await b.sign_up()).json()["user"]["id"]
    await browser_for(auth).sign_up(email="grace@example.com")
    assert await adapter.count(model="user") == 2
    found = await adapter.find_one(model="user", where=(Where("email", "ada@example.com"),))
    assert found["id"] == user_id and found["emailVerified"] is False
    assert await adapter.find_one(model="user", where=(Where("email", "nobody@example.com"),)) is None
    emails = [u["email"] for u in await adapter.find_many(model="user", sort_by=SortBy("email", "desc"))]
    assert emails == ["grace@example.com", "ada@example.com"]
    assert [u["email"] for u in await adapter.find_many(model="user", sort_by=SortBy("email"), offset=1)] == [
        "grace@example.com"
    ]
    ors = (
        Where("email", "ada@example.com", connector="OR"),
        Where("email", "grace@example.com", connector="OR"),
    )
    assert await adapter.count(model="user", where=ors) == 2
    assert await adapter.count(model="user", where=(Where("email", "ada", operator="starts_with"),)) == 1
    assert await adapter.count(model="user", where=(Where("email", ["ada@example.com"], operator="in"),)) == 1
    assert await adapter.count(model="user", where=(Where("image", None),)) == 2

    # Kernia's tests backdate a session with Unix seconds: it is then expired.
    assert (await b.session())["user"]["id"] == user_id
    updated = await adapter.update(
        model="session", where=(Where("userId", user_id),), update={"expiresAt": int(time.time()) - 3600}
    )
    assert updated["userId"] == user_id
    assert await b.session() is None

    now = int(time.time())
    data = {
        "identifier": "kernia-test",
        "value": "v",
        "expiresAt": now + 60,
        "createdAt": now,
        "updatedAt": now,
    }
    row = await adapter.create(model="verification", data=data)
    assert row["identifier"] == "kernia-test" and row["id"]
    assert await adapter.delete_many(model="verification", where=(Where("identifier", "kernia-test"),)) == 1
    with pytest.raises(ValueError, match="unknown model"):
        await adapter.count(model="organization")
    with pytest.raises(ValueError, match="not a column name"):
        await adapter.count(model="user", where=(Where('email" OR 1=1 --', "x"),))


def test_kernias_core_models():
    from kernia.db.schema import CORE_MODELS

    models = {m.name: {f.name: (f.type, f.required) for f in m.fields} for m in CORE_MODELS}
    assert set(models) == {"user", "session", "account", "verification"}
    assert models["user"]["emailVerified"] == ("boolean", True) and models["user"]["image"] == (
        "string",
        False,
    )
    assert models["account"]["accessTokenExpiresAt"] == ("date", False)
    assert models["session"]["userId"] == ("string", True)
