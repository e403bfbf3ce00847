"""Crashes are normal: ``bitloot serve`` is killed with SIGKILL in the middle of a run of paid
orders, on both wirings, and started again on the same data two seconds later. Every order whose
payment the engine recorded is then fulfilled within 60 s: bought once from the supplier, each key
delivered once. The restarted engine logs no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from entrypoints.http.auth import mint_token
from tests.e2e.conftest import (
    BITLOOT,
    JWT_SECRET,
    clear_redis,
    distributed_env,
    local_secret,
    sandbox_admin,
    start_process,
    stop_processes,
    wait_healthy,
)
from tests.support import free_port

ORDERS = 100
KILL_AFTER_PAID = 40
PRODUCT = "5c9b5f6b2539a4e8f172916a"
CONVERGE_WITHIN_S = 60


@dataclass
class Shop:
    """One ``bitloot serve --workers 0`` (API, process manager and worker in one process: the
    kill stops all of the engine's work at once, on PostgreSQL + Redis too, where the default
    layout would start worker processes that stop gracefully with it) that can be killed and
    started again on the same ``VAR_DIR`` and database."""

    tmp: Path
    env: dict[str, str]
    url: str
    process: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    def start(self) -> None:
        log = self.tmp / f"serve-{len(self.logs)}.log"
        self.logs.append(log)
        self.process = start_process([BITLOOT, "serve", "--workers", "0"], self.env, log)
        wait_healthy(self.url, self.process, log)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def admin(self) -> httpx.Client:
        token = mint_token(JWT_SECRET, "crash-admin", "admin")
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )


@pytest.fixture(params=["sqlite+in-process", "postgresql+redis"])
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shop]:
    port = free_port()
    env = {
        **os.environ,
        "VAR_DIR": str(tmp_path / "var"),
        "PORT": str(port),
        "JWT_SECRET": JWT_SECRET,
        "KINGUIN_SANDBOX_DELAY": "0.5",
        "STUCK_ORDER_AFTER_S": "3",
        "RETRY_BACKOFF_MAX_S": "2",
        "ORDERS_PER_MINUTE": "1000",
    }
    if request.param == "postgresql+redis":
        clear_redis()
        env |= distributed_env(request, f"crash-{port}")
    running = Shop(tmp_path, env, f"http://127.0.0.1:{port}")
    running.start()
    yield running
    if running.process is not None and running.process.poll() is None:
        stop_processes([running.process])
    if request.param == "postgresql+redis":
        clear_redis()


class Customers:
    """Customers placing and paying orders; a request cut by the crash is not retried (the
    customer would not know whether it went through), the next order waits for the engine."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.placed: list[tuple[str, int]] = []
        self.paid = 0
        self.cut = 0
        self.enough_paid = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(self.one, range(ORDERS)))

    def one(self, i: int) -> None:
        quantity = 1 + i % 2
        token = mint_token(JWT_SECRET, f"crash-{i % 9}", "user")
        with httpx.Client(
            base_url=self.shop.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client:
            self.wait_for_engine(client)
            try:
                self.buy(client, quantity)
            except httpx.TransportError:
                with self._lock:
                    self.cut += 1

    def buy(self, client: httpx.Client, quantity: int) -> None:
        placed = client.post("/orders", json={
            "email": "crash@example.com", "currency": "eur",
            "items": [{"product_id": PRODUCT, "quantity": quantity}],
        })  # fmt: skip
        assert placed.status_code == 201, placed.text
        order_id = placed.json()["id"]
        with self._lock:
            self.placed.append((order_id, quantity))
        payment = client.post("/payments/create", json={"order_id": order_id})
        assert payment.status_code in (200, 201), payment.text
        simulated = client.post(
            f"/sandbox/nowpayments/payments/{payment.json()['payment_id']}/simulate",
            json={"status": "finished"},
            headers=sandbox_admin(),
        )
        assert simulated.status_code == 200, simulated.text
        with self._lock:
            self.paid += 1
            if self.paid >= KILL_AFTER_PAID:
                self.enough_paid.set()

    @staticmethod
    def wait_for_engine(client: httpx.Client) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)


def test_every_paid_order_completes_once_after_a_kill(shop: Shop) -> None:
    customers = Customers(shop)
    placing = threading.Thread(target=customers.run)
    placing.start()
    assert customers.enough_paid.wait(timeout=120), "the run never got going"
    shop.kill()
    time.sleep(2)
    shop.start()
    placing.join(timeout=300)
    converged_by = time.monotonic() + CONVERGE_WITHIN_S

    with shop.admin() as admin:
        paid = [(o, q) for o, q in customers.placed if _was_paid(admin, o)]
        assert len(paid) >= ORDERS * 2 // 3, f"only {len(paid)} orders were paid"
        pending = {o for o, _ in paid}
        while pending and time.monotonic() < converged_by:
            pending = {o for o in pending if _status(admin, o) != "fulfilled"}
            time.sleep(1)
        assert not pending, f"{len(pending)} paid orders not fulfilled 60 s after the run"
        counts = _audit(shop, admin, paid)

    print(f"\ncrash counts: {dict(sorted(counts.items()))}, cut requests {customers.cut}")  # noqa: T201
    assert counts["purchases"] == len(paid)
    restarted_log = shop.logs[-1].read_bytes()
    assert b"Traceback" not in restarted_log


def _was_paid(admin: httpx.Client, order_id: str) -> bool:
    history: list[dict[str, Any]] = admin.get(f"/orders/{order_id}/history").json()
    return any(event["type"] == "OrderPaid" for event in history)


def _status(admin: httpx.Client, order_id: str) -> str:
    status: str = admin.get(f"/fulfillment/{order_id}/status").json()["status"]
    return status


def _audit(shop: Shop, admin: httpx.Client, paid: list[tuple[str, int]]) -> Counter[str]:
    """Each paid order: bought once, each of its keys delivered once, fulfilled once."""
    counts: Counter[str] = Counter()
    kinguin_key = local_secret(shop.env, "KINGUIN_API_KEY")
    for order_id, quantity in paid:
        history: list[dict[str, Any]] = admin.get(f"/orders/{order_id}/history").json()
        types = Counter(event["type"] for event in history)
        keys = [e["data"]["key_id"] for e in history if e["type"] == "KeyDelivered"]
        assert types["OrderPaid"] == 1, order_id
        assert types["OrderFulfilled"] == 1, order_id
        assert sorted(keys) == sorted(set(keys)), f"{order_id}: a key delivered twice"
        assert len(keys) == quantity, order_id
        found = admin.get(
            "/sandbox/kinguin/v1/order",
            params={"orderExternalId": order_id},
            headers={"X-Api-Key": kinguin_key},
        ).json()
        assert found["item_count"] == 1, f"{order_id}: bought {found['item_count']} times"
        counts["purchases"] += found["item_count"]
        counts["keys delivered"] += len(keys)
    return counts
