"""A FastAPI endpoint with and without kernia-rs's session check, for bench/session_check.py:
python me_app.py plain|noop|checked|cached|redis DATABASE_URL PORT. `plain` answers `GET /me` with a fixed
user and no check at all (the ceiling of FastAPI and uvicorn here); `noop` goes through a
FastAPI dependency that checks nothing (FastAPI's own share of a check); `checked` resolves
the session cookie with `session_dependency(auth)` first; `cached` does so with the cookie
cache on, answering from the `session_data` cookie; `redis` with sessions in Redis
($BENCH_REDIS_URL, default redis://127.0.0.1:6379/15). All answer the same body."""

import os
import sys

import uvicorn
from fastapi import Depends, FastAPI, Request

from kernia import KerniaOptions, RateLimitOptions, SessionOptions
from kernia.auth import init
from kernia.integrations.fastapi import session_dependency
from kernia.plugins.anonymous import anonymous

mode, database, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
app = FastAPI()
ID = "0mx2bfhx5piBe8G315FeafMCSLV5Bvof"

if mode == "plain":

    @app.get("/me")
    async def me_plain() -> dict:
        return {"id": ID, "anonymous": True}

elif mode == "noop":
    # FastAPI's own share: a dependency that reads the request and checks nothing.
    async def nothing(request: Request) -> dict:
        return {"user": {"id": ID}, "is_anonymous": True}

    @app.get("/me")
    async def me_noop(session=Depends(nothing)) -> dict:
        return {"id": session["user"]["id"], "anonymous": session["is_anonymous"]}

else:
    auth = init(
        KerniaOptions(
            database=database,
            secret="bench-secret-0123456789abcdef0123456789",
            base_url=f"http://127.0.0.1:{port}",
            rate_limit=RateLimitOptions(enabled=False),
            secondary_storage=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
            if mode == "redis"
            else None,
            session=SessionOptions(cookie_cache_enabled=True, cookie_cache_max_age=3600)
            if mode == "cached"
            else SessionOptions(),
            plugins=[anonymous()],
        )
    )
    app.mount("/api/auth", auth.router.mount())
    current = session_dependency(auth)

    @app.get("/me")
    async def me(session=Depends(current)) -> dict:
        return {"id": session["user"]["id"], "anonymous": session["is_anonymous"]}


uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
