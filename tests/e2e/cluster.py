"""A PostgreSQL + Redis cluster of engine processes — API processes (one by default) and two
workers — over a hostile Kinguin sandbox, the paid orders the chaos, restart and scale-out tests
push through it, and the audit that every order converged exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import redis

from entrypoints.http.auth import mint_token
from tests.conftest import POSTGRES_URL
from tests.e2e.conftest import (
    BITLOOT,
    JWT_SECRET,
    pay_in_full,
    start_process,
    stop_processes,
    wait_healthy,
)
from tests.support import free_port

OUT_OF_STOCK = "00000000000000000000dead"
IN_STOCK = "5c9b5f6b2539a4e8f172916a"
FAULTS = (
    '{"error_rate": 0.3, "duplicate_webhooks": true, "reorder_webhooks": true, '
    f'"drop_webhook_rate": 0.2, "out_of_stock": ["{OUT_OF_STOCK}"]}}'
)
TERMINAL = {"fulfilled", "fulfillment_failed", "payment_failed", "underpaid"}


class Cluster:
    """API processes (one runs the process manager, each projection and the sweeper; the others
    stand by for them) and two worker processes — or, with ``--no-followers`` for the APIs and
    ``--followers`` for the workers, the log followers run in a worker instead."""

    def __init__(
        self,
        tmp_path: Path,
        schema: str,
        redis_url: str,
        *,
        database_url: str = POSTGRES_URL,
        more_apis: int = 0,
        api_args: tuple[str, ...] = (),
        worker_args: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = tmp_path
        self.env = {
            **os.environ,
            "VAR_DIR": str(tmp_path / "var"),
            "PORT": str(self.port),
            "JWT_SECRET": JWT_SECRET,
            "DATABASE_URL": database_url,
            "DATABASE_SCHEMA": schema,
            "REDIS_URL": redis_url,
            "KINGUIN_SANDBOX_DELAY": "0.2",
            "KINGUIN_SANDBOX_FAULTS": FAULTS,
            "STUCK_ORDER_AFTER_S": "3",
            "FULFILLMENT_ATTEMPTS": "40",  # 30% of calls fail: a budget no order exhausts
            "RETRY_BACKOFF_MAX_S": "2",
        }
        self.api_command = [BITLOOT, "serve", "--no-worker", *api_args]
        self.worker_command = [BITLOOT, "worker", "--threads", "4", *worker_args]
        self.api = start_process(self.api_command, self.env, tmp_path / "api.log")
        self.workers = [self.start_worker(i) for i in range(2)]  # they may sync the catalog
        self.urls = [self.url]
        self.more_apis: list[subprocess.Popen[bytes]] = []
        try:
            wait_healthy(self.url, self.api, tmp_path / "api.log")
            self.more_apis = [self._start_api(i) for i in range(1, more_apis + 1)]
        except BaseException:
            self.stop()
            raise

    def _start_api(self, index: int) -> subprocess.Popen[bytes]:
        port = free_port()
        log = self.tmp / f"api-{index}.log"
        api = start_process(self.api_command, {**self.env, "PORT": str(port)}, log)
        wait_healthy(f"http://127.0.0.1:{port}", api, log)
        self.urls.append(f"http://127.0.0.1:{port}")
        return api

    def start_worker(self, index: int) -> subprocess.Popen[bytes]:
        log = self.tmp / f"worker-{index}-{time.monotonic_ns()}.log"
        return start_process(self.worker_command, self.env, log)

    def kill_worker(self, index: int) -> None:
        self.workers[index].send_signal(signal.SIGKILL)
        self.workers[index].wait()
        self.workers[index] = self.start_worker(index)

    def stop(self) -> None:
        stop_processes([*self.workers, *self.more_apis, self.api])


def place_paid_orders(url: str | list[str], count: int) -> list[tuple[str, int]]:
    """Place and pay ``count`` orders (every tenth is out of stock), through the API processes
    at ``url`` in turn; return (id, quantity)."""
    urls = [url] if isinstance(url, str) else url

    def one(i: int) -> tuple[str, int]:
        product = OUT_OF_STOCK if i % 10 == 0 else IN_STOCK
        quantity = 1 + i % 3
        token = mint_token(JWT_SECRET, f"chaos-{i % 7}", "user")
        with httpx.Client(
            base_url=urls[i % len(urls)], headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as c:
            placed = c.post("/orders", json={
                "email": "c@example.com", "currency": "eur",
                "items": [{"product_id": product, "quantity": quantity}],
            })  # fmt: skip
            assert placed.status_code == 201, placed.text
            order = placed.json()
            payment = c.post("/payments/create", json={"order_id": order["id"]}).json()
            pay_in_full(c, payment)
        return order["id"], quantity

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(count)))


def await_all(url: str, orders: list[tuple[str, int]], timeout: float = 240) -> dict[str, str]:
    admin = {"Authorization": f"Bearer {mint_token(JWT_SECRET, 'chaos-admin', 'admin')}"}
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, headers=admin, timeout=30) as c:
        while True:
            statuses = {o: c.get(f"/fulfillment/{o}/status").json()["status"] for o, _ in orders}
            if all(s in TERMINAL for s in statuses.values()) or time.monotonic() > deadline:
                return statuses
            time.sleep(1.0)


def audit(
    cluster: Cluster, orders: list[tuple[str, int]], statuses: dict[str, str]
) -> Counter[str]:
    """Check every order's history and the supplier's purchases; count what was seen."""
    admin = {"Authorization": f"Bearer {mint_token(JWT_SECRET, 'chaos-admin', 'admin')}"}
    counts: Counter[str] = Counter()
    secrets = json.loads((Path(cluster.env["VAR_DIR"]) / "secrets.json").read_text())
    kinguin = {"X-Api-Key": secrets["KINGUIN_API_KEY"]}
    with httpx.Client(base_url=cluster.url, headers=admin, timeout=30) as c:
        for order_id, quantity in orders:
            history: list[dict[str, Any]] = c.get(f"/orders/{order_id}/history").json()
            types = Counter(e["type"] for e in history)
            keys = [e["data"]["key_id"] for e in history if e["type"] == "KeyDelivered"]
            assert [e["version"] for e in history] == list(range(1, len(history) + 1))
            assert types["OrderPaid"] == 1, order_id
            assert len(keys) == len(set(keys)), f"{order_id}: a key delivered twice"
            purchases = _purchases(c, order_id, kinguin)
            counts["kinguin purchases"] += purchases
            counts[f"status {statuses[order_id]}"] += 1
            counts["KeyDelivered"] += len(keys)
            counts["webhooks recorded"] += types["WebhookReceived"]
            if statuses[order_id] == "fulfilled":
                assert purchases == 1, f"{order_id}: bought {purchases} times"
                assert len(keys) == quantity
                assert types["OrderFulfilled"] == 1
            else:
                assert purchases == 0
                assert "ProductUnavailable" in (
                    c.get(f"/orders/{order_id}").json()["failure_reason"] or ""
                )
    return counts


def _purchases(client: httpx.Client, order_id: str, kinguin: dict[str, str]) -> int:
    """How many Kinguin orders carry this order's id (faults may answer 5xx: ask again)."""
    for _ in range(20):
        answer = client.get(
            "/sandbox/kinguin/v1/order", params={"orderExternalId": order_id}, headers=kinguin
        )
        if answer.status_code == 200:
            count: int = answer.json()["item_count"]
            return count
    raise AssertionError("the Kinguin sandbox never answered the search")


def check(cluster: Cluster, orders: list[tuple[str, int]]) -> Counter[str]:
    statuses = await_all(cluster.url, orders)
    counts = audit(cluster, orders, statuses)
    print(f"\nchaos counts: {dict(sorted(counts.items()))}")  # noqa: T201 - the test reports its counts
    out_of_stock = (len(orders) + 9) // 10  # orders 0, 10, 20, …
    assert counts["status fulfilled"] == len(orders) - out_of_stock
    assert counts["status fulfillment_failed"] == out_of_stock
    assert counts["kinguin purchases"] == counts["status fulfilled"]
    return counts


def clear_redis(url: str) -> None:
    """Remove the engine's keys from a shared Redis."""
    client = redis.Redis.from_url(url)
    for key in client.scan_iter("bitloot*"):
        client.delete(key)
    client.close()
