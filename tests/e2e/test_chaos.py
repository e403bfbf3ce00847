"""Chaos: 200 orders through a hostile Kinguin (30% 5xx, duplicated, reordered and 20% dropped
webhooks, an out-of-stock product) on PostgreSQL + Redis with worker processes that are killed
with SIGKILL and restarted. Every order must end fulfilled (or fulfillment_failed where the
product was out of stock), bought once, each key delivered once, no event appended twice. The
counts are printed. (Redis restarted empty, and PostgreSQL dropping its connections, are in
``test_restarts``.)"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.cluster import Cluster, check, clear_redis, place_paid_orders
from tests.e2e.conftest import E2E_REDIS_URL

pytestmark = pytest.mark.alone  # a deployment of several processes: see tests/conftest.py

ORDERS = 120
INJECTED_FAULT_LOGGED = re.compile(
    rb"WARNING application\.fulfillment: order [0-9a-f-]+: (reserve|deliver) attempt \d+ of \d+ "
    rb"failed \(SupplierUnavailable: Kinguin [A-Z]+ /v[12]/order[^)]*: HTTP 500\); next at "
)


@pytest.fixture
def cluster(tmp_path: Path, pg_schema: str) -> Iterator[Cluster]:
    clear_redis(E2E_REDIS_URL)
    running = Cluster(tmp_path, pg_schema, E2E_REDIS_URL)
    yield running
    running.stop()
    clear_redis(E2E_REDIS_URL)


def test_hostile_supplier_and_killed_workers(cluster: Cluster) -> None:
    """Faults everywhere and two SIGKILLed workers: every order ends where it should, once; the
    injected faults are WARNING lines in the logs, never a traceback."""
    placing = ThreadPoolExecutor(max_workers=1)
    placed = placing.submit(place_paid_orders, cluster.url, ORDERS)
    for _ in range(2):
        time.sleep(3)
        cluster.kill_worker(0)
    orders = placed.result(timeout=300)
    placing.shutdown()
    check(cluster, orders)
    logs = {log.name: log.read_bytes() for log in cluster.tmp.glob("*.log")}
    tracebacks = {name: text.count(b"Traceback") for name, text in logs.items()}
    assert sum(tracebacks.values()) == 0, tracebacks
    assert any(INJECTED_FAULT_LOGGED.search(text) for text in logs.values())
