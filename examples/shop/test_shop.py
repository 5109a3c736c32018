"""The shop's own tests, written with kernia's pytest plugin (installed with kernia-rs):
``guest_client`` and ``signed_in_client`` browse the app like a browser, ``mail_outbox``
catches the magic links, ``assert_converted`` checks a conversion. Run: ``pytest examples``."""

import pytest

from examples.shop import create_app

SHOP = "http://localhost:8000"


@pytest.fixture
async def shop(tmp_path, mail_outbox):
    app = create_app(f"sqlite:///{tmp_path / 'shop.db'}", send_magic_link=mail_outbox.send_magic_link)
    async with app.router.lifespan_context(app):  # creates the shop's tables
        yield app


async def test_the_cart_survives_a_magic_link(shop, guest_client, mail_outbox, assert_converted):
    client = await guest_client(shop, base_url=SHOP)
    await client.http.post("/api/cart/tea")
    await client.http.post("/api/cart/tea")
    await client.post("/sign-in/magic-link", {"email": "ada@example.com", "name": "Ada"})
    await client.get("/magic-link/verify", params={"token": mail_outbox.last("ada@example.com").token})
    user = (await client.session())["user"]
    await assert_converted(shop.state.shop.auth, client.guest["id"], user["id"])
    cart = (await client.http.get("/api/cart")).json()
    assert [(item["sku"], item["quantity"]) for item in cart["items"]] == [("tea", 2)]


async def test_carts_merge_when_a_guest_signs_in(shop, signed_in_client, guest_client):
    member = await signed_in_client(shop, email="ada@example.com", password="correct-horse", base_url=SHOP)
    await member.http.post("/api/cart/tea")
    guest = await guest_client(shop, base_url=SHOP)
    await guest.http.post("/api/cart/tea")
    await guest.http.post("/api/cart/mug")
    assert (
        await guest.post("/sign-in/email", {"email": "ada@example.com", "password": "correct-horse"})
    ).is_success
    cart = (await guest.http.get("/api/cart")).json()
    assert [(item["sku"], item["quantity"]) for item in cart["items"]] == [("mug", 1), ("tea", 2)]


async def test_only_members_check_out(shop, guest_client):
    client = await guest_client(shop, base_url=SHOP)
    await client.http.post("/api/cart/kettle")
    refused = await client.http.post("/api/checkout")
    assert refused.status_code == 403
    await client.sign_up("grace@example.com")
    order = (await client.http.post("/api/checkout")).json()
    assert order["total_cents"] == 4900
    assert (await client.http.get("/api/cart")).json()["items"] == []


async def test_the_development_outbox_shows_a_visitor_only_their_own_links(tmp_path, guest_client):
    app = create_app(f"sqlite:///{tmp_path / 'shop.db'}")  # magic links go to the page's outbox
    async with app.router.lifespan_context(app):
        asker = await guest_client(app, base_url=SHOP)
        other = await guest_client(app, base_url=SHOP)
        await asker.post("/sign-in/magic-link", {"email": "ada@example.com"})
        [mail] = (await asker.http.get("/api/dev/outbox")).json()["mails"]
        assert mail["email"] == "ada@example.com" and "/magic-link/verify?token=" in mail["url"]
        assert (await other.http.get("/api/dev/outbox")).json()["mails"] == []
