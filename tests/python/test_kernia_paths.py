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
    # In memory: a second engine starts empty.
    with init(
        KerniaOptions(database=memory_adapter(), secret=SECRET, plugins=[email_and_password()])
    ) as auth:
        assert await auth.api.count_users() == 0


def test_unsupported_databases_and_stores_are_refused_by_name():
    from kernia.auth import init
    from kernia.types.init_options import KerniaOptions

    with pytest.raises(TypeError, match=r"memory_adapter\(\), got object"):
        init(KerniaOptions(database=object(), secret=SECRET))

    class RedisStore:
        pass

    with pytest.raises(ConfigurationError, match="rate_limit_store: RedisStore is not supported"):
        init(KerniaOptions(database="sqlite::memory:", secret=SECRET, rate_limit_store=RedisStore()))
