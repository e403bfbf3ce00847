"""Projection rebuild speed, next to the raw speed of reading the same notifications.

Fills a fresh event store (PostgreSQL schema or SQLite file) with N orders (each placed,
invoiced, paid: five events), then, three times each, measures:

- reading every notification of the orders projection's topics from the store, in the same
  batches the runner uses (the baseline: no projection can be faster than this);
- rebuilding the orders projection from position 0 to the head (a new generation, swapped in).

It prints the medians in events per second and the rebuild/raw ratio.

    .venv/bin/python bench/rebuild.py --orders 10000 --database postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/rebuild.py --orders 10000 --database sqlite
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg

from adapters.eventstore import RecorderEventStore, open_event_store, topics_of
from adapters.views import PostgresViews, SQLiteViews, ViewDatabase
from domain import order as rules
from domain import payments
from domain.events import DomainEvent, LineItem
from domain.payments import PaymentNotice
from entrypoints.settings import postgres_env
from projections.orders import OrdersProjection
from projections.runner import ProjectionRunner

BATCH = 500
RUNS = 3


def main() -> None:
    """Parse arguments, fill the store, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--database", default="sqlite", help="'sqlite' or a postgresql:// URL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store, views, cleanup = open_backend(args.database, Path(folder))
        try:
            fill(store, args.orders)
            measure(store, views)
        finally:
            views.close()
            store.close()
            cleanup()


def open_backend(
    database: str, folder: Path
) -> tuple[RecorderEventStore, ViewDatabase, Callable[[], None]]:
    """A fresh store and view database, and how to remove them afterwards."""
    if database == "sqlite":
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(folder / "es.db")}
        return open_event_store(env), SQLiteViews(folder / "views.db"), lambda: None
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    env = postgres_env(database, schema)
    return open_event_store(env), PostgresViews(database, schema), drop


def paid_order() -> list[DomainEvent]:
    """One order's events: placed, invoiced, paid (IPN audit lines included)."""
    now = datetime.now(UTC)
    item = LineItem(product_id="p", quantity=1, unit_price=Decimal("9.99"))
    events = rules.place(
        uuid.uuid4(), owner="b", email="b@e.co", currency="eur", items=[item], now=now
    )
    events += payments.invoice_created(rules.fold(events), invoice_id="i", invoice_url="u", now=now)
    notice = PaymentNotice(
        payment_id="1", payment_status="finished", invoice_id="i", price_amount=Decimal("9.99"),
        price_currency="eur", actually_paid=Decimal("9.99"), pay_amount=Decimal("9.99"),
    )  # fmt: skip
    return events + payments.payment_notified(rules.fold(events), notice, now)


def fill(store: RecorderEventStore, orders: int) -> None:
    """Append the orders, 100 per transaction."""
    started = time.perf_counter()
    for first in range(0, orders, 100):
        store.save([e for _ in range(min(100, orders - first)) for e in paid_order()])
    elapsed = time.perf_counter() - started
    print(f"filled {orders} orders, {store.head()} events in {elapsed:.1f} s")


def measure(store: RecorderEventStore, views: ViewDatabase) -> None:
    """Time raw reads and rebuilds, alternately, and print medians."""
    runner = ProjectionRunner(store, views, OrdersProjection(), batch_size=BATCH)
    runner.ensure()
    topics = topics_of(OrdersProjection.topics)
    raw, rebuild = [], []
    for _ in range(RUNS):
        raw.append(timed(lambda: read_all(store, topics)))
        rebuild.append(timed(lambda: rebuild_all(runner)))
    events = store.head()
    raw_rate, rebuild_rate = events / statistics.median(raw), events / statistics.median(rebuild)
    print(f"raw read of the log:      {raw_rate:>10,.0f} events/s (median of {RUNS})")
    print(f"orders projection rebuild: {rebuild_rate:>10,.0f} events/s (median of {RUNS})")
    print(f"rebuild / raw read:        {rebuild_rate / raw_rate:>10.2f}")


def timed(work: Callable[[], None]) -> float:
    """Seconds taken by ``work``."""
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def read_all(store: RecorderEventStore, topics: list[str]) -> None:
    """Read every notification of the topics, batch by batch, as the runner does."""
    position = 0
    while batch := store.notifications(position, BATCH, topics):
        position = batch[-1][0].id


def rebuild_all(runner: ProjectionRunner) -> None:
    """Build a new generation from position 0 and swap it in."""
    runner.request_rebuild()
    while runner.state().rebuild_generation is not None:
        runner.run_once()


if __name__ == "__main__":
    main()
