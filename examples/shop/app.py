"""A guest-first shop on kernia-rs.

A visitor lands as a guest, fills a cart, and converts to an account (email and
password, a magic link, or a passkey) when checking out. The cart lives in the auth
database, so ``on_link`` moves it inside the conversion's own transaction: if moving it
fails, the conversion is undone and the guest keeps both the cart and the session.

The auth routes are mounted in the app (``/api/auth``), or served by the native server on
a port of their own (``native=True``): the page then calls them cross-origin, which
``cors_origins`` allows.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from kernia import EmailPasswordOptions, KerniaOptions
from kernia.auth import Auth, init
from kernia.integrations.fastapi import session_dependency
from kernia.plugins.anonymous import anonymous
from kernia.plugins.magic_link import magic_link
from kernia.plugins.passkey import passkey
from kernia.plugins.username import username

STATIC = Path(__file__).resolve().parent / "static"

PRODUCTS = {
    "tea": {"sku": "tea", "name": "Green tea, 100 g", "price_cents": 850},
    "mug": {"sku": "mug", "name": "Stoneware mug", "price_cents": 1400},
    "kettle": {"sku": "kettle", "name": "Gooseneck kettle", "price_cents": 4900},
    "honey": {"sku": "honey", "name": "Wildflower honey", "price_cents": 1100},
}

TABLES = [
    """CREATE TABLE IF NOT EXISTS shop_cart_item (
        user_id TEXT NOT NULL, sku TEXT NOT NULL, quantity INTEGER NOT NULL,
        PRIMARY KEY (user_id, sku))""",
    """CREATE TABLE IF NOT EXISTS shop_order (
        id TEXT PRIMARY KEY, user_id TEXT NOT NULL, items TEXT NOT NULL,
        total_cents INTEGER NOT NULL, created_at BIGINT NOT NULL)""",
]


@dataclass
class Shop:
    """What the app's routes share: the auth handle and the development outbox."""

    auth: Auth
    #: The magic links the shop would mail, newest last, each with the user id of the
    #: visitor who asked for it: the page shows a visitor only their own.
    outbox: list[dict[str, Any]] = field(default_factory=list)
    #: Where the page finds the auth routes.
    auth_url: str = ""

    def sql(self, text: str) -> str:
        """``?`` placeholders in the auth database's own dialect (PostgreSQL: ``$1``)."""
        if self.auth.db.dialect == "sqlite":
            return text
        parts = text.split("?")
        return "".join(p + (f"${i}" if i < len(parts) else "") for i, p in enumerate(parts, 1))


def create_app(
    database: str = "sqlite:///shop.db",
    *,
    public_url: str = "http://localhost:8000",
    native_auth_port: int | None = None,
    secret: str | None = None,
    send_magic_link: Callable[..., Any] | None = None,
) -> FastAPI:
    """The shop, served at ``public_url``.

    With ``native_auth_port`` the auth routes are served by the native server on that port
    of the same host (started and stopped with the app); otherwise they are mounted at
    ``/api/auth`` in the app itself. Magic links go to the page's development outbox, or to
    ``send_magic_link(email, url, token, ctx)`` when given (a mailer, or a test's outbox).
    ``app.state.shop.auth`` is the engine.
    """
    if native_auth_port is None:
        auth_base = public_url
    else:
        host = public_url.split("://", 1)[1].split(":", 1)[0].split("/", 1)[0]
        auth_base = f"http://{host}:{native_auth_port}"

    holder: dict[str, Shop] = {}

    async def on_link(guest: dict[str, Any], user: dict[str, Any], ctx: Any) -> None:
        # The guest's cart joins the account's, inside the conversion's transaction:
        # quantities of a product both carts hold are added, the rest changes owner.
        q = holder["shop"].sql
        old, new = guest["id"], user["id"]
        await ctx.db.execute(
            q(
                "UPDATE shop_cart_item SET quantity = quantity + (SELECT g.quantity FROM shop_cart_item g"
                " WHERE g.user_id = ? AND g.sku = shop_cart_item.sku)"
                " WHERE user_id = ? AND sku IN (SELECT sku FROM shop_cart_item WHERE user_id = ?)"
            ),
            [old, new, old],
        )
        await ctx.db.execute(
            q(
                "DELETE FROM shop_cart_item WHERE user_id = ?"
                " AND sku IN (SELECT sku FROM shop_cart_item WHERE user_id = ?)"
            ),
            [old, new],
        )
        await ctx.db.execute(q("UPDATE shop_cart_item SET user_id = ? WHERE user_id = ?"), [new, old])

    async def to_outbox(email: str, url: str, token: str, ctx: Any) -> None:
        # A real shop mails the link; this one keeps it for the page to show, to the visitor
        # who asked for it only (a link signs its holder in).
        asker = await holder["shop"].auth.api.get_session(ctx.request["headers"])
        owner = asker["user"]["id"] if asker else None
        holder["shop"].outbox.append({"email": email, "url": url, "owner": owner})

    auth = init(
        KerniaOptions(
            database=database,
            secret=secret or os.environ.get("KERNIA_SECRET") or secrets.token_hex(32),
            base_url=auth_base,
            cors_origins=[public_url.rstrip("/")] if native_auth_port is not None else [],
            email_and_password=EmailPasswordOptions(enabled=True),
            plugins=[
                anonymous(on_link=on_link),
                username(),
                magic_link(send_magic_link or to_outbox),
                passkey(rp_name="Kernia shop"),
            ],
        )
    )
    shop = holder["shop"] = Shop(auth, auth_url=f"{auth_base}/api/auth")
    q = shop.sql

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        for ddl in TABLES:
            await auth.db.execute(ddl)
        server = auth.start_server(host="127.0.0.1", port=native_auth_port) if native_auth_port else None
        try:
            yield
        finally:
            if server is not None:
                server.stop()
            auth.close()

    app = FastAPI(title="Kernia shop", lifespan=lifespan)
    app.state.shop = shop
    if native_auth_port is None:
        app.mount("/api/auth", auth.router.mount())
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    visitor = session_dependency(auth)  # guests and members; 401 when signed out
    member = session_dependency(auth, allow_guests=False)  # 403 GUEST_NOT_ALLOWED for guests
    anyone = session_dependency(auth, required=False)  # None when signed out
    page = (STATIC / "index.html").read_text().replace("{{AUTH_URL}}", shop.auth_url)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        if not (STATIC / "app.js").is_file():
            raise HTTPException(503, "the page's script is not built: run `python -m examples.shop`")
        return page

    @app.get("/api/products")
    async def products() -> dict[str, Any]:
        return {"products": list(PRODUCTS.values())}

    async def cart_of(user_id: str) -> dict[str, Any]:
        rows = await auth.db.fetch_all(
            q("SELECT sku, quantity FROM shop_cart_item WHERE user_id = ? ORDER BY sku"), [user_id]
        )
        items = [{**PRODUCTS[r["sku"]], "quantity": r["quantity"]} for r in rows if r["sku"] in PRODUCTS]
        return {"items": items, "total_cents": sum(i["price_cents"] * i["quantity"] for i in items)}

    @app.get("/api/cart")
    async def cart(session=Depends(visitor)) -> dict[str, Any]:
        return await cart_of(session["user"]["id"])

    @app.post("/api/cart/{sku}")
    async def add_to_cart(sku: str, session=Depends(visitor)) -> dict[str, Any]:
        if sku not in PRODUCTS:
            raise HTTPException(404, f"no product {sku!r}")
        await auth.db.execute(
            q(
                "INSERT INTO shop_cart_item (user_id, sku, quantity) VALUES (?, ?, 1)"
                " ON CONFLICT (user_id, sku) DO UPDATE SET quantity = shop_cart_item.quantity + 1"
            ),
            [session["user"]["id"], sku],
        )
        return await cart_of(session["user"]["id"])

    @app.post("/api/checkout")
    async def checkout(session=Depends(member)) -> dict[str, Any]:
        user_id = session["user"]["id"]
        async with auth.db.transaction() as tx:
            rows = await tx.fetch_all(
                q("SELECT sku, quantity FROM shop_cart_item WHERE user_id = ?"), [user_id]
            )
            if not rows:
                raise HTTPException(400, "the cart is empty")
            items = [{"sku": r["sku"], "quantity": r["quantity"]} for r in rows]
            total = sum(
                PRODUCTS[i["sku"]]["price_cents"] * i["quantity"] for i in items if i["sku"] in PRODUCTS
            )
            order_id = uuid.uuid4().hex[:12]
            await tx.execute(
                q(
                    "INSERT INTO shop_order (id, user_id, items, total_cents, created_at)"
                    " VALUES (?, ?, ?, ?, ?)"
                ),
                [order_id, user_id, json.dumps(items), total, int(time.time())],
            )
            await tx.execute(q("DELETE FROM shop_cart_item WHERE user_id = ?"), [user_id])
        return {"id": order_id, "total_cents": total, "items": items}

    @app.get("/api/dev/outbox")
    async def outbox(session=Depends(anyone)) -> dict[str, Any]:
        if session is None:
            return {"mails": []}
        mine = [m for m in shop.outbox if m["owner"] == session["user"]["id"]]
        return {"mails": [{"email": m["email"], "url": m["url"]} for m in mine[-5:][::-1]]}

    return app
