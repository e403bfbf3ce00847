"""Webhook intake that cannot be abused, and payments checked like money, against a running
engine (issue 21): floods of big bodies answer 413 while the API stays responsive, JSON of any
depth answers 4xx, and IPNs that are short, incomplete or late are flagged, not applied."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.nowpayments_signature import canonical_body, sign
from bench.ipn_flood import MIB, measure, percentile
from tests.e2e.conftest import RunningEngine, embedded_engine, sandbox_admin
from tests.e2e.test_admin import eventually
from tests.e2e.test_catalog import CS_SOURCE, await_status, order_body

IPN = "/webhooks/nowpayments/ipn"
KINGUIN = "/kinguin/webhooks"
KIB = 1024
DEEP = b"[" * 10_000 + b"]" * 10_000


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEngine]:
    """One embedded engine for the module (each start costs seconds)."""
    with embedded_engine(tmp_path_factory.mktemp("abuse"), KINGUIN_SANDBOX_DELAY="0.2") as running:
        yield running


def secret(shop: RunningEngine, name: str) -> str:
    """One of the engine's locally generated secrets."""
    secrets: dict[str, str] = json.loads((Path(shop.env["VAR_DIR"]) / "secrets.json").read_text())
    return secrets[name]


def post_ipn(shop: RunningEngine, body: bytes, under: str) -> httpx.Response:
    """Post ``body`` to the IPN route signed under the secret ``under``."""
    return httpx.post(
        f"{shop.url}{IPN}", content=body, headers={"x-nowpayments-sig": sign(under, body)}
    )


def invoiced(client: httpx.Client) -> tuple[str, dict[str, Any]]:
    """A new order of one CS:Source key with its invoice: the order id and the invoice."""
    order = client.post("/orders", json=order_body(CS_SOURCE))
    assert order.status_code == 201, order.text
    invoice = client.post("/payments/create", json={"order_id": order.json()["id"]})
    assert invoice.status_code == 201, invoice.text
    return order.json()["id"], invoice.json()


def simulate(client: httpx.Client, invoice: dict[str, Any], **body: object) -> None:
    """Have the NOWPayments sandbox send a signed IPN for the invoice's payment."""
    answer = client.post(
        f"/sandbox/nowpayments/payments/{invoice['payment_id']}/simulate",
        json=body,
        headers=sandbox_admin(),
    )
    assert answer.json()["ipn_status_code"] == 200, answer.text


def history(client: httpx.Client, order_id: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = client.get(f"/orders/{order_id}/history").json()
    return entries


def admin_flags(admin: httpx.Client, order_id: str, status: str) -> str:
    """The order's flags as the admin list shows them, once the projection has them."""

    def flagged() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = admin.get("/admin/orders", params={"status": status}).json()[
            "items"
        ]
        return [o for o in items if o["order_id"] == order_id and o["flags"]]

    return str(eventually(flagged, bool)[0]["flags"])


def test_a_flood_of_big_ipn_bodies_answers_413_and_the_api_stays_responsive(
    shop: RunningEngine,
) -> None:
    """20 senders of 1 MiB bodies with a bogus signature: every answer read is 413 (the body is
    refused before it is read) and /healthz keeps a p99 under 50 ms."""
    figures = measure(shop.url, senders=20, seconds=4, size=MIB, before_s=1)
    answered = sum(figures.codes.values())
    assert figures.codes["413"] > 100, figures.codes
    assert set(figures.codes) <= {"413", "reset"}, figures.codes
    assert figures.codes["413"] >= 0.95 * answered, figures.codes
    assert percentile(figures.during_ms, 0.99) < 50, sorted(figures.during_ms)[-10:]
    assert b"ERROR" not in shop.logged()


def test_a_flood_of_small_ipn_shaped_bodies_does_not_starve_a_genuine_ipn(
    shop: RunningEngine,
) -> None:
    """20 senders of 8,000-byte IPN-shaped bodies with a bogus signature (each one reaches the
    sorted-form check) are all refused 401, and meanwhile genuine IPNs that verify only in
    their sorted form are accepted, every one."""
    ipn_secret = secret(shop, "NOWPAYMENTS_IPN_SECRET")

    def genuine(payment_id: int) -> int:
        payload = {"payment_status": "waiting", "payment_id": payment_id, "order_id": "none"}
        spaced = json.dumps(payload).encode()  # unsorted, with spaces: not the signed bytes
        signature = sign(ipn_secret, canonical_body(payload))
        assert signature != sign(ipn_secret, spaced)
        headers = {"x-nowpayments-sig": signature}
        return httpx.post(f"{shop.url}{IPN}", content=spaced, headers=headers).status_code

    def during_the_flood() -> list[int]:
        time.sleep(1.0)
        return [genuine(n) for n in range(10)]

    with ThreadPoolExecutor(1) as pool:
        answers = pool.submit(during_the_flood)
        figures = measure(shop.url, senders=20, seconds=3, size=8000, before_s=0.5, shape="ipn")
        assert answers.result() == [200] * 10
    assert figures.codes["401"] > 100, figures.codes


def test_the_sign_in_form_takes_a_small_body_only(shop: RunningEngine) -> None:
    """POST /admin/login, open to anyone: a body over 8 KiB answers 413 before it is read."""
    big = {"token": "x" * (9 * KIB)}
    assert httpx.post(f"{shop.url}/admin/login", data=big).status_code == 413
    assert httpx.post(f"{shop.url}/admin/login", data={"token": "x"}).status_code == 401


def test_webhook_bodies_over_64_kib_answer_413_with_or_without_a_length(
    shop: RunningEngine,
) -> None:
    """64 KiB passes to the signature check; a byte more is 413, also sent in chunks."""
    kinguin = {"X-Event-Name": "order.status", "X-Event-Secret": "wrong"}
    for path, headers in ((IPN, {"x-nowpayments-sig": "0" * 128}), (KINGUIN, kinguin)):
        at_limit = httpx.post(f"{shop.url}{path}", content=b" " * (64 * KIB), headers=headers)
        assert at_limit.status_code == 401
        over = httpx.post(f"{shop.url}{path}", content=b" " * (64 * KIB + 1), headers=headers)
        assert over.status_code == 413
        assert over.headers["content-type"].startswith("application/problem+json")
        chunks = iter([b" " * (32 * KIB)] * 3)
        assert httpx.post(f"{shop.url}{path}", content=chunks, headers=headers).status_code == 413


def test_json_of_any_depth_answers_4xx(shop: RunningEngine) -> None:
    """10,000-deep JSON: 400 on the IPN route (also correctly signed), the Kinguin webhook and
    POST /orders; 401 with a bogus signature; never a 500 or a traceback."""
    ipn_secret = secret(shop, "NOWPAYMENTS_IPN_SECRET")
    kinguin = {"X-Event-Secret": secret(shop, "KINGUIN_WEBHOOK_SECRET")}
    deep_object = b'{"a":' * 10_000 + b"1" + b"}" * 10_000  # 60,001 bytes
    with shop.client("deb") as deb:
        for body in (DEEP, deep_object):
            signed = post_ipn(shop, body, ipn_secret)
            assert signed.status_code == 400, signed.text
            bogus = httpx.post(
                f"{shop.url}{IPN}", content=body, headers={"x-nowpayments-sig": "a" * 128}
            )
            assert bogus.status_code == 401
            for event in ("order.status", "product.update"):
                headers = {**kinguin, "X-Event-Name": event}
                assert (
                    httpx.post(f"{shop.url}{KINGUIN}", content=body, headers=headers).status_code
                    == 400
                )
            order = deb.post("/orders", content=body, headers={"content-type": "application/json"})
            assert order.status_code == 400, order.text
            assert order.headers["content-type"].startswith("application/problem+json")
    logged = shop.logged()
    assert b"ERROR" not in logged
    assert b"Traceback" not in logged


def test_a_bad_signature_records_nothing(shop: RunningEngine) -> None:
    """A complete IPN under a wrong secret is 401; the order and the webhook log are unchanged."""
    with shop.client("eve") as eve, shop.client("root", "admin") as admin:
        order_id, invoice = invoiced(eve)
        before = history(eve, order_id)
        body = canonical_body(_ipn(order_id, invoice, "finished"))
        assert post_ipn(shop, body, "not-the-secret").status_code == 401
        assert history(eve, order_id) == before
        logs = admin.get("/admin/webhook-logs", params={"order_id": order_id}).json()["items"]
        assert logs == []


def test_a_short_finished_payment_leaves_the_order_unpaid_and_flagged(shop: RunningEngine) -> None:
    """The sandbox's `finished` for half the price: the order stays pending_payment and the
    admin list shows why."""
    with shop.client("fay") as fay, shop.client("root", "admin") as admin:
        order_id, invoice = invoiced(fay)
        simulate(fay, invoice, status="finished", actually_paid=0.00005)
        assert fay.get(f"/orders/{order_id}").json()["status"] == "pending_payment"
        assert "OrderPaid" not in [e["type"] for e in history(fay, order_id)]
        assert "below the order's total 6.99" in admin_flags(admin, order_id, "pending_payment")


def test_an_ipn_without_the_invoice_or_price_is_flagged(shop: RunningEngine) -> None:
    """A correctly signed `finished` IPN lacking invoice_id and the price moves nothing and is
    flagged, naming what it lacks."""
    with shop.client("gus") as gus, shop.client("root", "admin") as admin:
        order_id, invoice = invoiced(gus)
        ipn = _ipn(order_id, invoice, "finished")
        for field in ("invoice_id", "price_amount", "price_currency"):
            del ipn[field]
        body = canonical_body(ipn)
        answer = post_ipn(shop, body, secret(shop, "NOWPAYMENTS_IPN_SECRET"))
        assert answer.json()["outcome"] == "PaymentFlagged"
        assert gus.get(f"/orders/{order_id}").json()["status"] == "pending_payment"
        flags = admin_flags(admin, order_id, "pending_payment")
        assert "lacks invoice_id, price_amount, price_currency" in flags


def test_an_underpaid_order_refunds_what_was_paid_and_later_money_is_flagged(
    shop: RunningEngine,
) -> None:
    """partially_paid → underpaid; the refund records the half that arrived; the payment then
    finishing after the refund is flagged for admins, and the order stays refunded."""
    with shop.client("hal") as hal, shop.client("root", "admin") as admin:
        order_id, invoice = invoiced(hal)
        simulate(hal, invoice, status="partially_paid")
        await_status(hal, order_id, "underpaid")
        refund = admin.post(f"/admin/orders/{order_id}/refund", json={"reason": "short"})
        assert refund.status_code == 200, refund.text
        events = history(admin, order_id)
        requested = next(e for e in events if e["type"] == "RefundRequested")["data"]
        assert Decimal(requested["amount"]) < Decimal("6.99")
        assert Decimal(requested["amount"]) == Decimal("3.495")  # half the price, at its rate
        refunded = next(e for e in events if e["type"] == "OrderRefunded")["data"]
        assert Decimal(refunded["amount"]) == Decimal("3.495")
        simulate(hal, invoice, status="finished")
        assert hal.get(f"/orders/{order_id}").json()["status"] == "refunded"
        assert "6.99 eur received for an order that is refunded" in admin_flags(
            admin, order_id, "refunded"
        )


def _ipn(order_id: str, invoice: dict[str, Any], status: str) -> dict[str, Any]:
    """A complete IPN paying the invoice in full, as NOWPayments sends it."""
    return {
        "payment_id": 5_000_000_001,
        "parent_payment_id": None,
        "invoice_id": int(invoice["payment_id"]),
        "payment_status": status,
        "order_id": order_id,
        "price_amount": float(invoice["price_amount"]),
        "price_currency": "eur",
        "pay_amount": 0.00010754,
        "actually_paid": 0.00010754,
        "pay_currency": "btc",
        "outcome_amount": 0.000107,
        "outcome_currency": "btc",
    }
