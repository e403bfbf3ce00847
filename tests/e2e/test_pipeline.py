"""A customer's order travels the whole way over HTTP — order, invoice, signed IPN, Kinguin
purchase, webhook, encrypted delivery, reveal — on both wirings, through the sandboxes."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import httpx
import psycopg

from entrypoints.http.customer_views import customer_entry
from tests.conftest import POSTGRES_URL
from tests.e2e.conftest import BITLOOT, RunningEngine, pay_in_full, sandbox_admin

ORDER = {
    "email": "alice@example.com",
    "currency": "eur",
    "items": [
        {"product_id": "5c9b5f6b2539a4e8f172916a", "quantity": 2, "unit_price": "6.99"},
        {"product_id": "5c9b5f6b2539a4e8f172916b", "quantity": 1},
    ],
}
TERMINAL = {"fulfilled", "fulfillment_failed", "payment_failed", "underpaid"}


def await_status(client: httpx.Client, order_id: str, timeout: float = 30) -> list[str]:
    """Poll the status until it is terminal; return every distinct status seen."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/fulfillment/{order_id}/status").json()["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in TERMINAL:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"order stuck; statuses seen: {seen}")


def await_event(client: httpx.Client, order_id: str, event_type: str, timeout: float = 10) -> None:
    """Poll the history until an event of this type is in it."""
    deadline = time.monotonic() + timeout
    while not any(
        e["type"] == event_type for e in client.get(f"/orders/{order_id}/history").json()
    ):
        assert time.monotonic() < deadline, f"no {event_type} for {order_id}"
        time.sleep(0.05)


def place_and_pay(alice: httpx.Client) -> tuple[dict[str, Any], dict[str, Any]]:
    order = alice.post("/orders", json=ORDER)
    assert order.status_code == 201, order.text
    payment = alice.post("/payments/create", json={"order_id": order.json()["id"]})
    assert payment.status_code == 201, payment.text
    return order.json(), payment.json()


def test_order_is_fulfilled_end_to_end(engine: RunningEngine) -> None:
    """pending_payment → paid → reserved → fulfilled, keys revealed to the owner only."""
    with engine.client("alice") as alice, engine.client("bob") as bob:
        order, payment = place_and_pay(alice)
        assert order["status"] == "created"
        assert order["total"] == "28.97"
        assert order["email"] == "alice@example.com"
        assert payment["invoice_url"].endswith(f"iid={payment['payment_id']}")
        assert alice.post("/payments/create", json={"order_id": order["id"]}).json() == payment
        assert alice.get(f"/fulfillment/{order['id']}/status").json()["status"] == "pending_payment"

        paid = pay_in_full(alice, payment)
        assert paid.json()["ipn_status_code"] == 200
        seen = await_status(alice, order["id"])
        assert seen[-1] == "fulfilled", seen
        assert set(seen) <= {"pending_payment", "paid", "reserved", "fulfilled"}

        for path in (
            f"/orders/{order['id']}",
            f"/fulfillment/{order['id']}/status",
            f"/orders/{order['id']}/history",
        ):
            assert bob.get(path).status_code == 404
        assert bob.post(f"/fulfillment/{order['id']}/reveal").status_code == 404
        await_event(alice, order["id"], "CustomerNotified")  # the delivery e-mail went out

        revealed = alice.post(
            f"/fulfillment/{order['id']}/reveal", headers={"User-Agent": "e2e-agent"}
        )
        assert revealed.status_code == 200
        keys = revealed.json()["keys"]
        assert len(keys) == 3
        assert all(k["serial"] and k["content_type"] == "text/plain" for k in keys)

        history = alice.get(f"/orders/{order['id']}/history").json()
        types = [e["type"] for e in history]
        assert types[:2] == ["OrderPlaced", "PaymentInvoiceCreated"]
        assert types.count("OrderPaid") == 1
        assert types.count("KeysReserved") == 1
        assert types.count("KeyDelivered") == 3
        assert (
            types.index("KeysReserved")
            < types.index("KeyDelivered")
            < types.index("OrderFulfilled")
        )
        assert [e["version"] for e in history] == list(range(1, len(history) + 1))
        assert history[-1]["type"] == "KeysRevealed"
        actors = {e["type"]: e["actor"] for e in history}
        assert actors["OrderPlaced"] == "alice"
        assert actors["OrderPaid"] == "nowpayments"
        assert actors["KeysReserved"] == "engine"
        assert actors["KeysRevealed"] == "alice"
        assert history[-1]["data"]["ip"] == "127.0.0.1"
        assert history[-1]["data"]["user_agent"] == "e2e-agent"

        as_paid = alice.get(
            f"/orders/{order['id']}", params={"as_of": types.index("OrderPaid") + 1}
        )
        assert as_paid.json()["status"] == "paid"
        with engine.client("auditor", "admin") as admin:
            staff_view = admin.get(f"/orders/{order['id']}/history").json()
            assert [customer_entry(e, "alice") for e in staff_view] == history
            assert staff_view[0]["data"]["items"][0]["cost_cap"] == "5.90"

    placed = staff_view[0]["data"]
    assert placed["email"] == ""
    assert placed["email_sealed"]
    assert "email_sealed" not in history[0]["data"]  # not in the customer's view
    assert_no_plaintext(engine, [k["serial"] for k in keys] + ["alice@example.com"])


def assert_no_plaintext(engine: RunningEngine, serials: list[str]) -> None:
    """No key appears in the event store, the vault or the logs (the Kinguin sandbox's own
    journal under ``sandbox/`` is the supplier's database, which holds them by nature)."""
    var = Path(engine.env["VAR_DIR"])
    haystacks = [engine.logged()]
    haystacks += [
        p.read_bytes()
        for p in var.rglob("*")
        if p.is_file() and p.suffix != ".eml" and (var / "sandbox") not in p.parents
    ]
    if engine.wiring.startswith("postgresql"):
        haystacks += bucket_objects(engine.env)
        with psycopg.connect(POSTGRES_URL) as conn:
            schema = engine.env["DATABASE_SCHEMA"]
            rows = conn.execute(f'SELECT state FROM "{schema}".bitloot_events').fetchall()  # noqa: S608
            haystacks += [bytes(row[0]) for row in rows]
    for serial in serials:
        assert not any(serial.encode() in h for h in haystacks), "plaintext key found at rest"


def bucket_objects(env: dict[str, str]) -> list[bytes]:
    """Every object in the engine's S3 bucket."""
    s3 = boto3.client(
        "s3",
        endpoint_url=env["R2_ENDPOINT"],
        aws_access_key_id=env["R2_ACCESS_KEY_ID"],
        aws_secret_access_key=env["R2_SECRET_ACCESS_KEY"],
        region_name="auto",
    )
    listed = s3.list_objects_v2(Bucket=env["R2_BUCKET"]).get("Contents", [])
    assert listed, "the S3 vault holds the sealed keys"
    return [s3.get_object(Bucket=env["R2_BUCKET"], Key=o["Key"])["Body"].read() for o in listed]


def test_hostile_and_repeated_ipns(engine: RunningEngine) -> None:
    """A bad signature is refused with 401 and changes nothing; a repeated IPN is recorded once."""
    with engine.client("carol") as carol:
        order, payment = place_and_pay(carol)
        forged = {
            "payment_id": 1,
            "payment_status": "finished",
            "order_id": order["id"],
            "invoice_id": payment["payment_id"],
        }
        for signature in ("0" * 128, None):
            headers = {"x-nowpayments-sig": signature} if signature else {}
            refused = httpx.post(
                f"{engine.url}/webhooks/nowpayments/ipn", json=forged, headers=headers
            )
            assert refused.status_code == 401
            assert refused.headers["content-type"].startswith("application/problem+json")
        assert carol.get(f"/orders/{order['id']}").json()["status"] == "pending_payment"
        assert b"rejected nowpayments webhook from 127.0.0.1" in engine.logged()

        simulate = f"/sandbox/nowpayments/payments/{payment['payment_id']}/simulate"
        admin = sandbox_admin()
        waiting = carol.post(simulate, json={"status": "waiting"}, headers=admin)
        assert waiting.json()["ipn_status_code"] == 200
        carol.post(simulate, json={"status": "finished"}, headers=admin)
        carol.post(simulate, json={"status": "finished"}, headers=admin)
        assert await_status(carol, order["id"])[-1] == "fulfilled"
        types = [e["type"] for e in carol.get(f"/orders/{order['id']}/history").json()]
        assert types.count("OrderPaid") == 1
        assert types.count("PaymentStatusChanged") == 2


def test_kinguin_webhook_needs_the_secret(engine: RunningEngine) -> None:
    """A Kinguin webhook without the right X-Event-Secret is refused; with it, 204."""
    body = {
        "orderId": "NOPE",
        "orderExternalId": "x",
        "status": "completed",
        "updatedAt": "2026-01-01T00:00:00.000+00:00",
    }
    url = f"{engine.url}/kinguin/webhooks"
    assert (
        httpx.post(
            url, json=body, headers={"X-Event-Name": "order.status", "X-Event-Secret": "guess"}
        ).status_code
        == 401
    )
    secrets = json.loads((Path(engine.env["VAR_DIR"]) / "secrets.json").read_text())
    secret = secrets["KINGUIN_WEBHOOK_SECRET"]
    accepted = httpx.post(
        url, json=body, headers={"X-Event-Name": "order.status", "X-Event-Secret": secret}
    )
    assert accepted.status_code == 204


def test_demo_command_runs_one_order(engine: RunningEngine) -> None:
    """`bitloot demo` places, pays and fulfils an order and prints its timeline."""
    done = subprocess.run(  # noqa: S603
        [BITLOOT, "demo", "--url", engine.url, "--timeout", "30"],
        env=engine.env, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert b"OrderFulfilled" in done.stdout
    assert b"status: fulfilled" in done.stdout


def with_item(**changes: object) -> dict[str, object]:
    """The sample order with its first line changed."""
    return {
        **ORDER,
        "items": [{"product_id": "5c9b5f6b2539a4e8f172916a", "quantity": 1, **changes}],
    }


def test_bad_requests_get_problem_details(engine: RunningEngine) -> None:
    """Malformed or unauthenticated requests get 4xx problem details, never 500."""
    with engine.client("dave") as dave:
        cases = [
            (httpx.post(f"{engine.url}/orders", json=ORDER), 401),
            (dave.post("/orders", content=b"{not json"), 400),
            (dave.post("/orders", json={"email": "x"}), 400),
            (dave.post("/orders", json={**ORDER, "items": []}), 422),
            (dave.post("/orders", content=b"x" * (1024 * 1024 + 10)), 413),
            (dave.get("/orders/not-a-uuid"), 404),
            (dave.post("/payments/create", json={"order_id": "nope"}), 400),
            (dave.get(f"/orders/{'0' * 8}-0000-0000-0000-{'0' * 12}"), 404),
            (dave.post("/orders", json={**ORDER, "items": "many"}), 400),
            (dave.post("/orders", json=with_item(unit_price="NaN")), 422),
            (dave.post("/orders", json=with_item(unit_price="1e400")), 422),
            (dave.post("/orders", json=with_item(quantity=2.5)), 400),
            (dave.post("/orders", json=[1, 2]), 400),
            (dave.post("/orders", json={**ORDER, "email": "x" * 300}), 400),
            (dave.get("/admin/orders"), 403),
            (
                httpx.post(f"{engine.url}/orders", headers={"Authorization": "Bearer not.a.jwt"}),
                401,
            ),
            (httpx.get(f"{engine.url}/downloads/x?lid=a&exp=1&sig=b"), 403),
        ]
        for response, status in cases:
            assert response.status_code == status, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
        order = dave.post("/orders", json=ORDER).json()
        for as_of in ("99999999999999999999999", "0", "-1", "yesterday", "2026-13-45T00:00:00"):
            answer = dave.get(f"/orders/{order['id']}", params={"as_of": as_of})
            assert answer.status_code in (200, 400), (as_of, answer.text)
        assert httpx.get(f"{engine.url}/readyz").json()["status"] == "ready"
