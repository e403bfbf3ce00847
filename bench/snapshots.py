"""Loading a product as its stream grows: the whole stream folded, against the newest snapshot
and the events after it (``adapters.snapshots``), in the same run, on SQLite and, with
``--database``, on PostgreSQL.

For each length, one product gets that many events (its cost changing, two events a change),
then ``Catalog.product`` is timed: median of ``--loads`` loads, without snapshots and with them
(the first load with them keeps the snapshot and is not counted).

    .venv/bin/python bench/snapshots.py [--database postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import psycopg

from adapters.eventstore import RecorderEventStore, open_event_store
from adapters.snapshots import ProductSnapshots
from application.catalog import Catalog
from domain import catalog
from domain.events import DomainEvent, SupplierProduct
from entrypoints.settings import postgres_env

LENGTHS = (100, 1_000, 10_000)
NOW = datetime(2026, 12, 7, tzinfo=UTC)
RULES = catalog.PricingRules()


class Clock:
    def now(self) -> datetime:
        return NOW


def main() -> None:
    """Parse arguments, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", help="a postgresql:// URL (a schema of its own is made)")
    parser.add_argument("--loads", type=int, default=20)
    args = parser.parse_args()
    print("| backend | events | whole stream, median | snapshot + tail, median | ratio |")
    print("| --- | --- | --- | --- | --- |")
    with sqlite_store() as store:
        measure("SQLite", store, args.loads)
    if args.database:
        with postgres_store(args.database) as store:
            measure("PostgreSQL", store, args.loads)


def measure(backend: str, store: RecorderEventStore, loads: int) -> None:
    """One row per stream length."""
    for length in LENGTHS:
        product_id = uuid.uuid4().hex[:24]
        grow(store, product_id, length)
        whole = Catalog(store, cast(Any, None), Clock(), Decimal(2))
        snapped = Catalog(
            store, cast(Any, None), Clock(), Decimal(2), ProductSnapshots(store.snapshot_recorder())
        )
        snapped.product(product_id)  # keeps the snapshot
        full, fast = timed(whole, product_id, loads), timed(snapped, product_id, loads)
        print(f"| {backend} | {length:,} | {full * 1000:.2f} ms | {fast * 1000:.2f} ms "
              f"| {full / fast:.0f}x |")  # fmt: skip
        sys.stdout.flush()


def grow(store: RecorderEventStore, product_id: str, length: int) -> None:
    """Save ``length`` events of one product (its cost changing), in saves of 500."""
    product, pending = None, list[DomainEvent]()
    cost = 500
    while (product.version if product else 0) < length:
        cost += 1
        events = catalog.synced(product, supplier(product_id, cost), RULES, NOW)
        for event in events:
            product = catalog.apply_product(product, event)
        pending += events
        if len(pending) >= 500:
            store.save(pending)
            pending = []
    if pending:
        store.save(pending)


def supplier(product_id: str, cost: int) -> SupplierProduct:
    return SupplierProduct(
        product_id=product_id, kinguin_id=1, name="Bench", platform="Steam", region="Free",
        qty=10, text_qty=10, cost=Decimal(cost) / 100, cheapest_offer_ids=("offer-1",),
    )  # fmt: skip


def timed(products: Catalog, product_id: str, loads: int) -> float:
    """The median seconds of one load."""
    times = []
    for _ in range(loads):
        start = time.perf_counter()
        products.product(product_id)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@contextmanager
def sqlite_store() -> Iterator[RecorderEventStore]:
    with tempfile.TemporaryDirectory() as folder:
        store = open_event_store(
            {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": f"{folder}/es.db"}
        )
        yield store
        store.close()


@contextmanager
def postgres_store(url: str) -> Iterator[RecorderEventStore]:
    schema = f"bench_snapshots_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    store = open_event_store(postgres_env(url, schema))
    try:
        yield store
    finally:
        store.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
