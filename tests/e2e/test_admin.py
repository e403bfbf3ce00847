"""What admins and auditors see over HTTP: webhook logs with replay, key audit, order lists,
projection state with rebuild — and that users cannot reach any of it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from adapters.nowpayments_signature import canonical_body, sign
from tests.e2e.conftest import RunningEngine, pay_in_full
from tests.e2e.test_pipeline import await_event, await_status, place_and_pay


def eventually(read: Callable[[], Any], accept: Callable[[Any], bool], timeout: float = 10) -> Any:
    """Poll ``read`` until ``accept`` says yes; projections trail writes by milliseconds."""
    deadline = time.monotonic() + timeout
    value = read()
    while not accept(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"never accepted: {value}")
        time.sleep(0.05)
        value = read()
    return value


def read_accesses(client: httpx.Client, path: str) -> list[dict[str, Any]]:
    accesses: list[dict[str, Any]] = client.get(path).json()["accesses"]
    return accesses


def fulfilled_and_revealed(engine: RunningEngine, owner: httpx.Client) -> str:
    order, payment = place_and_pay(owner)
    pay_in_full(owner, payment)
    assert await_status(owner, order["id"])[-1] == "fulfilled"
    await_event(owner, order["id"], "CustomerNotified")  # nothing more happens on its own after
    owner.post(f"/fulfillment/{order['id']}/reveal", headers={"User-Agent": "audit-agent"})
    return str(order["id"])


def test_admin_sees_deliveries_replays_them_and_audits_key_reads(engine: RunningEngine) -> None:
    """Webhook logs list both providers; replay changes nothing; the audit names the reader."""
    with (
        engine.client("erin") as erin,
        engine.client("ops", "admin") as admin,
        engine.client("mallory") as mallory,
    ):
        order_id = fulfilled_and_revealed(engine, erin)

        logs = eventually(
            lambda: admin.get("/admin/webhook-logs", params={"order_id": order_id}).json()["items"],
            lambda items: {i["provider"] for i in items} == {"nowpayments", "kinguin"},
        )
        paid = next(i for i in logs if i["provider"] == "nowpayments")
        assert paid["outcome"] == "OrderPaid"
        assert paid["verified"] is True
        detail = admin.get(f"/admin/webhook-logs/{paid['delivery_id']}").json()
        assert json.loads(detail["body"])["payment_status"] == "finished"
        assert len(detail["headers"]["x-nowpayments-sig"]) == 128
        kinguin = next(i for i in logs if i["provider"] == "kinguin")
        kinguin_headers = admin.get(f"/admin/webhook-logs/{kinguin['delivery_id']}").json()[
            "headers"
        ]
        assert kinguin_headers == {"x-event-name": "order.status"}  # never the shared secret
        before = len(erin.get(f"/orders/{order_id}/history").json())
        replayed = admin.post(f"/admin/webhook-logs/{kinguin['delivery_id']}/replay")
        assert replayed.json()["outcome"] == "no change"  # deliver, run again, finds it done
        assert len(erin.get(f"/orders/{order_id}/history").json()) == before
        replayed = admin.post(f"/admin/webhook-logs/{paid['delivery_id']}/replay")
        assert replayed.json()["outcome"] == "no change"
        history = erin.get(f"/orders/{order_id}/history").json()
        assert [e["type"] for e in history[before:]] == ["WebhookReceived", "PaymentStatusChanged"]
        assert [e["type"] for e in history].count("OrderPaid") == 1

        for client, path in (
            (erin, f"/fulfillment/{order_id}/audit"),
            (admin, f"/admin/key-audit/{order_id}"),
        ):
            accesses = eventually(partial(read_accesses, client, path), bool)
            assert accesses[0]["who"] == "erin"
            assert accesses[0]["ip"] == "127.0.0.1"
            assert accesses[0]["user_agent"] == "audit-agent"
            assert accesses[0]["how"] == "reveal"
        assert mallory.get(f"/fulfillment/{order_id}/audit").status_code == 404
        for path in (
            "/admin/orders",
            "/admin/webhook-logs",
            "/admin/projections",
            f"/admin/key-audit/{order_id}",
        ):
            assert mallory.get(path).status_code == 403
        listed = admin.get("/admin/orders", params={"status": "fulfilled"}).json()["items"]
        assert order_id in [o["order_id"] for o in listed]
        reservations = admin.get("/admin/reservations", params={"order_id": order_id}).json()[
            "items"
        ]
        assert reservations[0]["supplier_status"] == "completed"


def test_signed_ipn_for_an_unknown_order_is_stored_for_admins(engine: RunningEngine) -> None:
    """A genuine IPN naming no order of ours answers 2xx and shows in the webhook log."""
    secret = json.loads((Path(engine.env["VAR_DIR"]) / "secrets.json").read_text())[
        "NOWPAYMENTS_IPN_SECRET"
    ]
    stranger = str(uuid.uuid4())
    body = canonical_body({"payment_id": 99, "payment_status": "finished", "order_id": stranger})
    answer = httpx.post(
        f"{engine.url}/webhooks/nowpayments/ipn",
        content=body,
        headers={"x-nowpayments-sig": sign(secret, body), "content-type": "application/json"},
    )
    assert answer.status_code == 200
    assert answer.json()["outcome"] == "unknown order"
    with engine.client("ops", "admin") as admin:
        logged = eventually(
            lambda: admin.get("/admin/webhook-logs", params={"outcome": "unknown order"}).json()[
                "items"
            ],
            bool,
        )
        assert (
            json.loads(admin.get(f"/admin/webhook-logs/{logged[0]['delivery_id']}").json()["body"])[
                "order_id"
            ]
            == stranger
        )


def test_projection_rebuild_swaps_without_losing_rows(engine: RunningEngine) -> None:
    """A rebuild runs beside the live view and swaps in a new version with the same rows."""
    with engine.client("frank") as frank, engine.client("ops", "admin") as admin:
        order_id = fulfilled_and_revealed(engine, frank)
        eventually(
            lambda: admin.get("/admin/projections").json(),
            lambda ps: all(p["lag_events"] == 0 for p in ps),
        )
        before = admin.get("/admin/orders", params={"limit": 200}).json()["items"]
        started = admin.post("/admin/projections/orders/rebuild")
        assert started.status_code == 202
        assert started.json()["rebuild"]["version"] == 2  # named even if it finishes at once
        rebuilt = eventually(
            lambda: {p["name"]: p for p in admin.get("/admin/projections").json()}["orders"],
            lambda p: p["version"] == 2 and p["state"] == "live" and p["lag_events"] == 0,
        )
        assert rebuilt["position"] == rebuilt["head"]
        after = admin.get("/admin/orders", params={"limit": 200}).json()["items"]
        assert after == before
        assert order_id in [o["order_id"] for o in after]
        assert admin.post("/admin/projections/nope/rebuild").status_code == 404


def test_metrics_in_prometheus_format(engine: RunningEngine) -> None:
    """/metrics, scraped and parsed as Prometheus does: request counts and durations (a refused
    request counted with its 401), the paid-to-fulfilled histogram, the log head, projection lag
    and orders by status; each actor's runs and durations from the process running the actors
    (the API itself on the embedded default, ``bitloot worker --metrics-port`` otherwise)."""
    assert httpx.post(f"{engine.url}/orders", json={}).status_code == 401
    with engine.client("nia") as nia:
        fulfilled_and_revealed(engine, nia)
    families = eventually(
        lambda: scrape(engine.url),
        lambda f: (
            sample(f, "bitloot_orders", status="fulfilled") >= 1
            and sample(f, "bitloot_paid_to_fulfilled_seconds_count") >= 1
        ),
    )
    assert sample(families, "bitloot_http_requests_total", path="/orders", status_code="401") >= 1
    assert sample(families, "bitloot_http_request_duration_seconds_count", path="/orders") >= 2
    assert sample(families, "bitloot_event_log_head") > 0
    assert sample(families, "bitloot_projection_lag_events", projection="orders") >= 0
    assert families["bitloot_paid_to_fulfilled_seconds"].type == "histogram"
    actors = scrape(engine.actor_metrics_url)
    for actor in ("reserve", "deliver"):
        assert sample(actors, "bitloot_actor_messages_total", actor=actor) >= 1
        assert sample(actors, "bitloot_actor_duration_seconds_count", actor=actor) >= 1
    assert actors["bitloot_actor_failures"].type == "counter"
    assert actors["bitloot_actor_retries"].type == "counter"


def scrape(url: str) -> dict[str, Metric]:
    """The metric families a ``/metrics`` URL exposes, by name, as Prometheus' parser reads them."""
    answer = httpx.get(url if url.endswith("/metrics") else f"{url}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(answer.text)}


def sample(families: dict[str, Metric], name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (-1: none)."""
    values = [
        s.value
        for family in families.values()
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    return sum(values) if values else -1.0
