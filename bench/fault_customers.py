"""The customers of ``bench/faults.py``: orders arriving at a steady rate, each request sent
again while a fault makes it fail; then the wait for the orders to settle, and their audit."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from entrypoints.http.auth import mint_token

if not __package__:  # run as ``python bench/faults.py``: the repository is not on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fault_stage import (
    GIVE_UP_S,
    IN_FLIGHT,
    JWT_SECRET,
    PAUSE_S,
    PRODUCT_ID,
    REQUEST_TIMEOUT_S,
    BenchError,
    Engine,
    GaveUp,
    sleep_until,
)

# --- the customers --------------------------------------------------------------------------------


@dataclass
class Purchase:
    """One customer's order: its id once the engine gave one, when its payment went through."""

    order_id: str | None = None
    paid_at: float | None = None
    gave_up: str | None = None


class Customers:
    """Customers arriving at a steady rate, each in a thread of its own, retrying what fails."""

    def __init__(self, url: str, count: int, rate: float) -> None:
        self.url = url
        self.purchases = [Purchase() for _ in range(count)]
        self.rate = rate
        self.retried = 0
        self.started = 0.0
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._admin = {"Authorization": f"Bearer {mint_token(JWT_SECRET, 'faults-admin', 'admin')}"}

    def start(self) -> None:
        self.started = time.monotonic() + 0.2
        for index in range(len(self.purchases)):
            thread = threading.Thread(target=self._arrive, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    def _arrive(self, index: int) -> None:
        sleep_until(self.started + index / self.rate)
        purchase = self.purchases[index]
        token = mint_token(JWT_SECRET, f"faults-{index % 10}", "user")
        with httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=REQUEST_TIMEOUT_S,
            trust_env=False,
        ) as client:
            try:
                self._buy(client, purchase)
            except GaveUp as why:
                purchase.gave_up = str(why)

    def _buy(self, client: httpx.Client, purchase: Purchase) -> None:
        order = {"email": "faults@example.com", "currency": "eur",
                 "items": [{"product_id": PRODUCT_ID, "quantity": 1}]}  # fmt: skip
        placed = self._send(client, "/orders", order, lambda r: r.status_code == 201)
        purchase.order_id = str(placed.json()["id"])
        invoice = self._send(
            client,
            "/payments/create",
            {"order_id": purchase.order_id},
            lambda r: r.status_code in (200, 201),
        )
        self._send(
            client,
            f"/sandbox/nowpayments/payments/{invoice.json()['payment_id']}/simulate",
            {"status": "finished"},
            lambda r: r.status_code == 200 and r.json().get("ipn_status_code") == 200,
            headers=self._admin,
        )
        purchase.paid_at = time.monotonic()

    def _send(
        self,
        client: httpx.Client,
        path: str,
        body: dict[str, Any],
        accepted: Callable[[httpx.Response], bool],
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST until accepted; a 4xx other than 429 is a refusal, anything else is retried."""
        give_up = time.monotonic() + GIVE_UP_S
        while True:
            try:
                response = client.post(path, json=body, headers=headers)
            except httpx.TransportError as cut:
                failure = type(cut).__name__
            else:
                if accepted(response):
                    return response
                if 400 <= response.status_code < 500 and response.status_code != 429:
                    raise GaveUp(f"{_route(path)} refused {response.status_code}")
                failure = str(response.status_code)
            if self.stop.is_set() or time.monotonic() > give_up:
                raise GaveUp(f"{_route(path)} still failing ({failure}) after {GIVE_UP_S:.0f} s")
            with self._lock:
                self.retried += 1
            time.sleep(PAUSE_S)


def _route(path: str) -> str:
    return "simulate" if path.endswith("/simulate") else path


def settle(engine: Engine, orders: list[str], until: float) -> tuple[dict[str, str], float | None]:
    """Poll until no order is paid or reserved, or ``until``; the statuses then, and when it
    settled (None if it did not)."""
    statuses: dict[str, str] = {}
    with engine.admin() as admin:
        while True:
            for order_id in orders:
                if statuses.get(order_id, "paid") not in IN_FLIGHT:
                    continue
                if time.monotonic() > until:
                    return statuses, None
                try:
                    answer = admin.get(f"/fulfillment/{order_id}/status")
                    if answer.status_code == 200:
                        statuses[order_id] = str(answer.json()["status"])
                except httpx.HTTPError:
                    pass
            if not any(statuses.get(o, "paid") in IN_FLIGHT for o in orders):
                return statuses, time.monotonic()
            if time.monotonic() > until:
                return statuses, None
            time.sleep(1.0)


@dataclass
class Audit:
    """Every order's history and its purchases at the supplier, counted."""

    paid: int = 0
    fulfilled: int = 0
    doubled: int = 0
    stranded: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, engine: Engine, orders: list[str], statuses: dict[str, str]) -> Audit:
        audit = cls()
        kinguin = {"X-Api-Key": engine.secret("KINGUIN_API_KEY")}
        with engine.admin() as admin:
            for order_id in orders:
                history: list[dict[str, Any]] = _get(admin, f"/orders/{order_id}/history")
                if not any(event["type"] == "OrderPaid" for event in history):
                    continue
                audit.paid += 1
                status = statuses.get(order_id, "unknown")
                if status == "fulfilled":
                    audit.fulfilled += 1
                else:
                    audit.stranded[status] += 1
                keys = [e["data"]["key_id"] for e in history if e["type"] == "KeyDelivered"]
                found = _get(
                    admin,
                    "/sandbox/kinguin/v1/order",
                    params={"orderExternalId": order_id},
                    headers=kinguin,
                )
                if found["item_count"] > 1 or len(keys) != len(set(keys)):
                    audit.doubled += 1
        return audit


def _get(client: httpx.Client, path: str, **options: Any) -> Any:
    """GET, asking again while the engine is in trouble (it should not be any more)."""
    for _ in range(30):
        try:
            answer = client.get(path, **options)
            if answer.status_code == 200:
                return answer.json()
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise BenchError(f"GET {path} kept failing")


def counts(counter: Counter[str]) -> str:
    return ", ".join(f"{count} x {what}" for what, count in counter.most_common())
