"""Findings of a security review, each shown fixed against a running engine: no token in a
configured deployment's banner, a customer's view of their history, no 500 for odd methods,
Unicode digits or NUL characters."""

from __future__ import annotations

import base64
import json
import os
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from entrypoints.http.auth import mint_token
from tests.e2e.conftest import (
    BITLOOT,
    JWT_SECRET,
    RunningEngine,
    embedded_engine,
    start_process,
    stop_processes,
    wait_healthy,
)
from tests.e2e.test_catalog import await_status, paid_order, set_faults
from tests.support import free_port

DEAD = "00000000000000000000dead"


def test_tokens_are_printed_only_for_the_engines_own_local_secret(tmp_path: Path) -> None:
    """With JWT_SECRET configured the banner prints no token; on the local default it does."""
    with embedded_engine(tmp_path / "configured") as configured:
        banner = configured.logged()
    assert b"eyJ" not in banner
    assert b"none is printed" in banner
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "JWT_SECRET"}
    env |= {"VAR_DIR": str(tmp_path / "local" / "var"), "PORT": str(port)}
    log = tmp_path / "local.log"
    process = start_process([BITLOOT, "serve"], env, log)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process, log)
    finally:
        stop_processes([process])
    printed = log.read_bytes()
    assert b"user token (sub alice)" in printed
    assert b"eyJ" in printed


def test_no_server_error_for_odd_input(engine: RunningEngine) -> None:
    """OPTIONS on admin routes, Unicode digits in numbers and NUL in filters are 4xx (or the
    204 of a preflight), never a 500."""
    with engine.client("root", "admin") as admin, engine.client("ann") as ann:
        for path in ("/admin/orders", "/admin/catalog", "/admin/projections"):
            answer = httpx.options(f"{engine.url}{path}")
            assert answer.status_code in (204, 405), (path, answer.text)
        assert httpx.get(f"{engine.url}/downloads/x?lid=a&exp=²&sig=b").status_code == 400
        order = ann.post("/orders", json={"email": "a@example.com", "items": [
            {"product_id": "5c9b5f6b2539a4e8f172916a", "quantity": 1}]}).json()  # fmt: skip
        assert ann.get(f"/orders/{order['id']}", params={"as_of": "²"}).status_code == 400
        for params in ({"status": "\x00"}, {"cursor": "\x00"}):
            assert admin.get("/admin/orders", params=params).status_code == 400
        assert admin.get("/admin/webhook-logs", params={"provider": "a\x00"}).status_code == 400
        assert httpx.get(f"{engine.url}/products/%00").status_code == 404
        assert httpx.get(f"{engine.url}/products", params={"q": "\x00"}).status_code == 200


def test_customers_see_a_customer_view_of_their_history(tmp_path: Path) -> None:
    """No supplier id or error text, vault references or staff names in any view of the owner
    (order, as_of, history, status, evidence, websocket); a failure shows as its code. Admins
    see everything."""
    with (
        embedded_engine(tmp_path, KINGUIN_SANDBOX_DELAY="0.1") as shop,
        shop.client("ivy") as ivy,
        shop.client("root", "admin") as admin,
    ):
        set_faults(shop.url, out_of_stock=[DEAD])
        failed, fine = paid_order(ivy, DEAD), paid_order(ivy)
        await_status(ivy, failed, "fulfillment_failed")
        await_status(ivy, fine, "fulfilled")
        assert admin.post(f"/admin/orders/{fine}/shred").status_code == 200
        supplier_id = admin.get(f"/orders/{fine}").json()["supplier_order_id"]
        assert supplier_id
        assert ivy.get(f"/orders/{failed}").json()["failure_code"] == "out_of_stock"
        assert ivy.get(f"/fulfillment/{failed}/status").json()["failure_code"] == "out_of_stock"
        assert "ProductUnavailable" in admin.get(f"/orders/{failed}").json()["failure_reason"]
        for order_id in (failed, fine):
            owner = owner_views(shop, ivy, order_id)
            staff = admin.get(f"/orders/{order_id}/history").text
            for secret in ("ProductUnavailable", "vault_ref", '"root"', "cost_cap", supplier_id):
                assert secret not in owner, (order_id, secret)
            assert "supplier_order_id" not in owner
            assert "failure_reason" not in owner
            assert any(s in staff for s in ("ProductUnavailable", "vault_ref"))
        history = ivy.get(f"/orders/{fine}/history").json()
        shredded = next(e for e in history if e["type"] == "KeysShredded")
        assert (shredded["actor"], shredded["data"]["who"]) == ("staff", "staff")
        refused = next(e for e in ivy.get(f"/orders/{failed}/history").json()
                       if e["type"] == "FulfillmentFailed")  # fmt: skip
        assert refused["data"] == {"failure_code": "out_of_stock"}


def owner_views(shop: RunningEngine, owner: httpx.Client, order_id: str) -> str:
    """Everything the owner can read of an order, as one text: the order now and as of its
    third version, its history, status, evidence (the states of the leaves it is shown,
    decoded) and what its websocket sends on connect."""
    texts = [
        owner.get(f"/orders/{order_id}").text,
        owner.get(f"/orders/{order_id}", params={"as_of": "3"}).text,
        owner.get(f"/orders/{order_id}/history").text,
        owner.get(f"/fulfillment/{order_id}/status").text,
    ]
    bundle = owner.get(f"/orders/{order_id}/evidence").json()
    texts += [
        base64.b64decode(leaf["state"]).decode() for leaf in bundle["leaves"] if leaf["state"]
    ]
    token = owner.headers["Authorization"].removeprefix("Bearer ")
    url = f"{shop.url.replace('http://', 'ws://')}/ws/orders/{order_id}?token={token}"
    with connect(url) as socket:
        texts.append(str(socket.recv(timeout=5)))
    return "\n".join(texts)


def test_tokens_are_bound_to_this_service(tmp_path: Path) -> None:
    """With JWT_ISSUER and JWT_AUDIENCE set, a token must carry both, with these values."""
    with embedded_engine(tmp_path, JWT_ISSUER="bitloot-test", JWT_AUDIENCE="shop-api") as shop:

        def status(**claims: str) -> int:
            token = mint_token(JWT_SECRET, "ops", "admin", **claims)  # type: ignore[arg-type]
            bearer = {"Authorization": f"Bearer {token}"}
            return httpx.get(f"{shop.url}/admin/dashboard", headers=bearer).status_code

        assert status(issuer="bitloot-test", audience="shop-api") == 200
        assert status() == 401
        assert status(issuer="bitloot-test", audience="another-api") == 401
        assert status(issuer="someone-else", audience="shop-api") == 401


def test_a_websocket_closes_when_its_token_expires(tmp_path: Path) -> None:
    """The socket hears the current status, then is closed with 4401 at the token's exp."""
    with embedded_engine(tmp_path) as shop, shop.client("jo") as jo:
        order = jo.post("/orders", json={"email": "j@example.com", "items": [
            {"product_id": "5c9b5f6b2539a4e8f172916a", "quantity": 1}]}).json()  # fmt: skip
        token = mint_token(JWT_SECRET, "jo", "user", timedelta(seconds=2))
        url = f"{shop.url.replace('http://', 'ws://')}/ws/orders/{order['id']}?token={token}"
        started = time.monotonic()
        with connect(url) as socket:
            assert json.loads(socket.recv(timeout=5))["status"] == "created"
            with pytest.raises(ConnectionClosed) as closed:
                socket.recv(timeout=10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4401
        assert 1.0 < time.monotonic() - started < 6


def test_signing_out_revokes_the_token_across_processes(engine: RunningEngine) -> None:
    """After ``POST /admin/logout`` the token is refused by the API (Redis on PostgreSQL)."""
    token = engine.token("ops", "admin")
    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{engine.url}/admin/dashboard", headers=bearer).status_code == 200
    assert httpx.post(f"{engine.url}/admin/logout", headers=bearer).status_code == 303
    assert httpx.get(f"{engine.url}/admin/dashboard", headers=bearer).status_code == 401
    with engine.client("ops", "admin") as fresh:
        assert fresh.get("/admin/dashboard").status_code == 200


def test_sandbox_controls_need_an_admin(engine: RunningEngine) -> None:
    """Simulating a payment, and reading or setting faults, need an admin bearer token."""
    with engine.client("kai") as kai, engine.client("root", "admin") as admin:
        order = kai.post("/orders", json={"email": "k@example.com", "items": [
            {"product_id": "5c9b5f6b2539a4e8f172916a", "quantity": 1}]}).json()  # fmt: skip
        payment = kai.post("/payments/create", json={"order_id": order["id"]}).json()
        simulate = f"/sandbox/nowpayments/payments/{payment['payment_id']}/simulate"
        assert httpx.post(f"{engine.url}{simulate}", json={"status": "finished"}).status_code == 401
        assert kai.post(simulate, json={"status": "finished"}).status_code == 401
        for path in ("/sandbox/kinguin/faults", "/sandbox/nowpayments/faults"):
            assert kai.get(path).status_code == 401
            assert kai.post(path, json={}).status_code == 401
            assert admin.get(path).status_code == 200
        assert kai.get(f"/fulfillment/{order['id']}/status").json()["status"] == "pending_payment"
        assert admin.post(simulate, json={"status": "finished"}).json()["ipn_status_code"] == 200
        await_status(kai, order["id"], "fulfilled")


def test_order_and_invoice_creation_are_rate_limited(tmp_path: Path) -> None:
    """Per user: the fourth order in a minute answers 429 with Retry-After; so do invoices."""
    with embedded_engine(tmp_path, ORDERS_PER_MINUTE="3") as shop, shop.client("lou") as lou:
        body = {"email": "l@example.com", "items": [
            {"product_id": "5c9b5f6b2539a4e8f172916a", "quantity": 1}]}  # fmt: skip
        placed = [lou.post("/orders", json=body) for _ in range(4)]
        assert [r.status_code for r in placed] == [201, 201, 201, 429]
        assert 1 <= int(placed[-1].headers["retry-after"]) <= 61
        assert placed[-1].headers["content-type"].startswith("application/problem+json")
        with shop.client("max") as other:
            assert other.post("/orders", json=body).status_code == 201
        order_id = placed[0].json()["id"]
        invoices = [lou.post("/payments/create", json={"order_id": order_id}) for _ in range(4)]
        assert [r.status_code for r in invoices] == [201, 201, 201, 429]
