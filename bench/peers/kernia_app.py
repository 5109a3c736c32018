"""Kernia 0.1.0 (pure Python) with the anonymous plugin, on SQLite, under uvicorn.
Run in its own virtual environment by bench/run.py: python kernia_app.py DB_PATH PORT.
bench/peers/kernia_me_app.py builds the same engine with `build()`."""

import asyncio
import sys

import uvicorn
from kernia_sqlalchemy.adapter import SQLAlchemyAdapter, build_metadata
from sqlalchemy.ext.asyncio import create_async_engine

from kernia.auth import init
from kernia.db.schema.resolve import resolve_tables
from kernia.plugins.anonymous import anonymous
from kernia.plugins.email_password import email_and_password
from kernia.types.init_options import EmailPasswordOptions, KerniaOptions, RateLimitOptions


def build(db_path: str, port: int):
    """Kernia on a SQLite file with its tables; get-session and the email routes come with
    its email_and_password plugin."""
    plugins = [email_and_password(), anonymous()]
    models = tuple(resolve_tables(plugins).values())
    metadata = build_metadata(models)
    url = f"sqlite+aiosqlite:///{db_path}"

    async def create_schema() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        await engine.dispose()

    asyncio.run(create_schema())
    adapter = SQLAlchemyAdapter(engine=create_async_engine(url), metadata=metadata, models=models)
    return init(
        KerniaOptions(
            database=adapter,
            secret="bench-secret-0123456789abcdef0123456789",
            base_url=f"http://127.0.0.1:{port}",
            email_and_password=EmailPasswordOptions(enabled=True),
            rate_limit=RateLimitOptions(enabled=False),
            plugins=plugins,
        )
    )


if __name__ == "__main__":
    db_path, port = sys.argv[1], int(sys.argv[2])
    kernia_app = build(db_path, port).router.mount()

    async def app(scope, receive, send):
        # Kernia's app expects paths with the /api/auth prefix already trimmed.
        if scope["type"] == "http" and scope["path"].startswith("/api/auth"):
            scope = {**scope, "path": scope["path"][len("/api/auth") :], "root_path": "/api/auth"}
        await kernia_app(scope, receive, send)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
