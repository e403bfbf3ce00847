"""The shop sets the price: orders priced from the catalog synced from the Kinguin sandbox,
purchases capped at the cost they were priced against, held while the supplier balance is low,
failed visibly when the supplier's price moves (then retried at the new cost by an admin), and
refunds and key returns — all against a running engine over real HTTP."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import BITLOOT, RunningEngine, embedded_engine, pay_in_full, sandbox_admin

CS_SOURCE = "5c9b5f6b2539a4e8f172916a"  # cheapest offer 5.79 EUR: sold at 6.99 by default rules
SOLD_OUT = "0000000000000000000000e0"
PREORDER = "00000000000000000000f00d"


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[RunningEngine]:
    """An embedded engine whose sweeper re-drives waiting orders after a second."""
    with embedded_engine(tmp_path, KINGUIN_SANDBOX_DELAY="0.2", STUCK_ORDER_AFTER_S="1") as running:
        yield running


def order_body(product: str = CS_SOURCE, quantity: int = 1, **line: Any) -> dict[str, Any]:
    item = {"product_id": product, "quantity": quantity, **line}
    return {"email": "shopper@example.com", "items": [item]}


def paid_order(client: httpx.Client, product: str = CS_SOURCE, quantity: int = 1) -> str:
    """Place an order at the shop's price and pay it in full; return its id."""
    order = client.post("/orders", json=order_body(product, quantity))
    assert order.status_code == 201, order.text
    payment = client.post("/payments/create", json={"order_id": order.json()["id"]}).json()
    assert payment["price_amount"] == order.json()["total"]
    simulated = pay_in_full(client, payment)
    assert simulated.status_code < 300, simulated.text
    return str(order.json()["id"])


def await_status(client: httpx.Client, order_id: str, wanted: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = client.get(f"/fulfillment/{order_id}/status").json()["status"]
        if status == wanted:
            return
        time.sleep(0.1)
    raise AssertionError(f"order {order_id} is {status}, not {wanted}")


def set_faults(url: str, **faults: object) -> None:
    answer = httpx.post(f"{url}/sandbox/kinguin/faults", json=faults, headers=sandbox_admin())
    assert answer.status_code < 300, answer.text


def types_of(client: httpx.Client, order_id: str) -> list[str]:
    return [e["type"] for e in client.get(f"/orders/{order_id}/history").json()]


def test_orders_are_priced_by_the_shop(engine: RunningEngine) -> None:
    """The catalog lists sale prices; an order takes them, a lower shown price gets 409 with the
    current price, and unknown or sold-out products create nothing."""
    listed = httpx.get(f"{engine.url}/products", params={"q": "counter-strike"}).json()["items"]
    assert [p["product_id"] for p in listed] == [CS_SOURCE]
    assert (listed[0]["price"], listed[0]["currency"]) == ("6.99", "EUR")
    assert "cost" not in listed[0]
    with engine.client("alice") as alice, engine.client("root", "admin") as admin:
        cheap = alice.post("/orders", json=order_body(unit_price="0.01"))
        assert cheap.status_code == 409
        assert cheap.json()["current_price"] == "6.99"
        assert alice.post("/orders", json=order_body("nope")).status_code == 422
        assert alice.post("/orders", json=order_body(SOLD_OUT)).status_code == 409
        lines = [{"product_id": PREORDER, "quantity": 1}, {"product_id": CS_SOURCE, "quantity": 1}]
        mixed = {"email": "a@example.com", "items": lines}
        assert alice.post("/orders", json=mixed).status_code == 422
        assert admin.get("/admin/orders").json()["items"] == []
        order = alice.post("/orders", json=order_body(quantity=2, unit_price="6.99")).json()
        assert order["total"] == "13.98"
        catalog = admin.get("/admin/catalog", params={"q": "counter-strike"}).json()
        row = catalog["items"][0]
        assert (row["cost"], row["sale_price"], row["margin"]) == ("5.79", "6.99", "1.20")
        assert catalog["last_sync"]["seen"] >= 30
        history = admin.get(f"/orders/{order['id']}/history").json()
        line = history[0]["data"]["items"][0]
        assert (line["unit_price"], line["catalog_version"]) == ("6.99", row["version"])
        own = alice.get(f"/orders/{order['id']}/history").json()[0]["data"]["items"][0]
        assert own == {
            "product_id": CS_SOURCE,
            "offer_id": None,
            "quantity": 2,
            "unit_price": "6.99",
        }
        assert (line["priced_cost"], line["cost_cap"]) == ("5.79", "5.90")  # admins only
        assert line["name"] == row["name"]  # the product's name when it was ordered


def test_a_price_jump_fails_the_order_until_an_admin_accepts_the_new_cost(
    shop: RunningEngine,
) -> None:
    """Kinguin's price moved between payment and purchase: fulfillment_failed with
    supplier_price_changed; the admin's retry at the new cost fulfils it; a refund is the
    other way out."""
    with shop.client("bob") as bob, shop.client("root", "admin") as admin:
        set_faults(shop.url, price_jump=50)
        retried, refunded = paid_order(bob), paid_order(bob)
        for order_id in (retried, refunded):
            await_status(bob, order_id, "fulfillment_failed")
        failed = admin.get("/admin/orders", params={"status": "fulfillment_failed"}).json()
        assert {o["failure_reason"] for o in failed["items"]} == {"supplier_price_changed"}
        assert admin.post(f"/admin/orders/{retried}/retry").status_code == 202
        await_status(bob, retried, "fulfilled")
        history = admin.get(f"/orders/{retried}/history").json()
        raised = next(e["data"] for e in history if e["type"] == "CostCapRaised")
        assert (raised["new_cap"], raised["margin"]) == ("8.69", "-1.70")
        answer = admin.post(f"/admin/orders/{refunded}/refund", json={"reference": "np-42"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "refunded"
        assert types_of(admin, refunded)[-2:] == ["RefundRequested", "OrderRefunded"]


def test_a_low_balance_holds_orders_until_a_top_up(shop: RunningEngine) -> None:
    """With no supplier balance orders wait in paid, visibly; after a top-up all complete."""
    with shop.client("carol") as carol, shop.client("root", "admin") as admin:
        set_faults(shop.url, balance=0)
        orders = [paid_order(carol) for _ in range(3)]
        deadline = time.monotonic() + 20
        while True:
            paid = admin.get("/admin/orders", params={"status": "paid"}).json()["items"]
            if sum("held: insufficient_balance" in (o["flags"] or "") for o in paid) == 3:
                break
            assert time.monotonic() < deadline, paid
            time.sleep(0.2)
        set_faults(shop.url, balance=1000)
        for order_id in orders:
            await_status(carol, order_id, "fulfilled")
        assert "PurchaseHeld" in types_of(carol, orders[0])


def test_unrevealed_keys_go_back_and_revealed_ones_do_not(shop: RunningEngine) -> None:
    """A return within 24 hours refunds and shreds; after a reveal it is refused."""
    with shop.client("dan") as dan, shop.client("root", "admin") as admin:
        kept, returned = paid_order(dan), paid_order(dan)
        for order_id in (kept, returned):
            await_status(dan, order_id, "fulfilled")
        answer = admin.post(f"/admin/orders/{returned}/return-keys")
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "refunded"
        assert {"KeysReturned", "KeysShredded", "OrderRefunded"} <= set(types_of(admin, returned))
        assert dan.post(f"/fulfillment/{returned}/reveal").status_code in (409, 410)
        assert dan.post(f"/fulfillment/{kept}/reveal").status_code == 200
        refused = admin.post(f"/admin/orders/{kept}/return-keys")
        assert refused.status_code == 409
        assert "revealed" in refused.json()["detail"]


def test_product_updates_reprice_the_catalog(shop: RunningEngine) -> None:
    """A product.update webhook has the product read again and repriced."""
    set_faults(shop.url, product_updates=True, price_jump=100)
    deadline = time.monotonic() + 20
    while httpx.get(f"{shop.url}/products/{CS_SOURCE}").json()["price"] == "6.99":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert httpx.get(f"{shop.url}/products/{CS_SOURCE}").json()["price"] == "13.99"
    with shop.client("root", "admin") as admin:
        logs = admin.get("/admin/webhook-logs", params={"provider": "kinguin"}).json()["items"]
        assert any(log["event_name"] == "product.update" for log in logs)


def test_a_preorder_stays_reserved_until_its_release(shop: RunningEngine) -> None:
    """A pre-order is bought at once but its keys come only after the product's release."""
    product = httpx.get(f"{shop.url}/products/{PREORDER}").json()
    assert product["availability"] == "preorder"
    with shop.client("erin") as erin:
        order_id = paid_order(erin, PREORDER)
        await_status(erin, order_id, "reserved")
        time.sleep(2)  # the sweeper polls Kinguin meanwhile: still processing
        assert erin.get(f"/fulfillment/{order_id}/status").json()["status"] == "reserved"
        released = httpx.post(
            f"{shop.url}/sandbox/kinguin/products/{PREORDER}/release", headers=sandbox_admin()
        )
        assert released.status_code == 200, released.text
        await_status(erin, order_id, "fulfilled")


def test_pricing_rules_reprice_and_the_catalog_view_rebuilds(shop: RunningEngine) -> None:
    """New margin rules reprice at once; the products view pages with a cursor and rebuilds."""
    with shop.client("root", "admin") as admin:
        rules = {"margin_percent": "50", "minimum_margin": "1.00", "rounding": None,
                 "overrides": {"5c9b5f6b2539a4e8f172916b": "19.49"}}  # fmt: skip
        answer = admin.put("/admin/pricing", json=rules)
        assert answer.status_code == 200, answer.text
        assert answer.json()["repriced"] > 30
        assert admin.put("/admin/pricing", json={**rules, "rounding": "99"}).status_code == 422
        deadline = time.monotonic() + 10
        while httpx.get(f"{shop.url}/products/{CS_SOURCE}").json()["price"] != "8.69":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert httpx.get(f"{shop.url}/products/5c9b5f6b2539a4e8f172916b").json()["price"] == "19.49"
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
            page = httpx.get(f"{shop.url}/products", params=params).json()
            seen.extend(p["product_id"] for p in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) >= 30
        assert admin.post("/admin/projections/products/rebuild").status_code == 202
        deadline = time.monotonic() + 20
        while True:
            state = {p["name"]: p for p in admin.get("/admin/projections").json()}["products"]
            if state["state"] == "live" and state["version"] == 2:
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.2)
        assert httpx.get(f"{shop.url}/products/{CS_SOURCE}").json()["price"] == "8.69"


def test_catalog_sync_from_the_command_line(shop: RunningEngine) -> None:
    """``bitloot catalog sync`` imports the whole catalog and says how fast."""
    done = subprocess.run(  # noqa: S603
        [BITLOOT, "catalog", "sync"], env=shop.env, capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert b"products seen" in done.stdout
