"""Projections on SQLite and PostgreSQL: batched catch-up, idempotent replay, rebuild beside the
live table with an atomic swap, a failing handler that stops the projection visibly, lists and
the sweeper's query."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from adapters.eventstore import RecorderEventStore, open_event_store
from adapters.views import PostgresViews, SQLiteViews, Tx, ViewDatabase
from domain import order as rules
from domain import payments
from domain.events import DomainEvent, LineItem
from domain.payments import PaymentNotice
from projections.base import Projection
from projections.orders import OrdersProjection
from projections.queries import BadCursor, OrderSearch, ReadModels
from projections.runner import ProjectionRunner
from projections.state import current_table
from tests.conftest import POSTGRES_URL, postgres_env

NOW = datetime(2026, 11, 28, tzinfo=UTC)
PAID_IN_FULL = PaymentNotice(
    payment_id="1", payment_status="finished", invoice_id="i", price_amount=Decimal("2.50"),
    price_currency="eur", actually_paid=Decimal("2.50"), pay_amount=Decimal("2.50"),
)  # fmt: skip


@pytest.fixture(params=["sqlite", "postgres"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[RecorderEventStore, ViewDatabase]]:
    if request.param == "sqlite":
        store = open_event_store(
            {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "es.db")}
        )
        views: ViewDatabase = SQLiteViews(tmp_path / "views.db")
    else:
        schema = request.getfixturevalue("pg_schema")
        store = open_event_store(postgres_env(schema))
        views = PostgresViews(POSTGRES_URL, schema)
    yield store, views
    views.close()
    store.close()


def order_events(status: str = "paid", at: datetime = NOW) -> list[DomainEvent]:
    """An order's events up to ``created``, ``pending_payment`` or ``paid``."""
    events = rules.place(
        uuid4(), owner="alice", email="a@b.co", currency="eur",
        items=[LineItem(product_id="p", quantity=1, unit_price=Decimal("2.50"))], now=at,
    )  # fmt: skip
    if status == "created":
        return events
    events += payments.invoice_created(rules.fold(events), invoice_id="i", invoice_url="u", now=at)
    if status == "pending_payment":
        return events
    return events + payments.payment_notified(rules.fold(events), PAID_IN_FULL, at)


def table_rows(views: ViewDatabase, name: str) -> list[tuple[Any, ...]]:
    return sorted(views.query(f"SELECT * FROM {current_table(views, name)}"))  # noqa: S608


def test_catch_up_matches_a_fold_of_the_events(
    backend: tuple[RecorderEventStore, ViewDatabase],
) -> None:
    """After catching up, every order's row carries the status its events fold to."""
    store, views = backend
    orders = [order_events(s) for s in ("created", "pending_payment", "paid", "paid")]
    for events in orders:
        store.save(events)
    runner = ProjectionRunner(store, views, OrdersProjection(), batch_size=3)
    runner.ensure()
    runner.catch_up()
    counts = ReadModels(views).counts_by_status()
    assert counts == {"created": 1, "pending_payment": 1, "paid": 2}
    assert runner.state().position == store.head()
    before = table_rows(views, "orders")
    runner.catch_up()
    assert table_rows(views, "orders") == before


def test_rebuild_builds_beside_the_live_table_and_swaps(
    backend: tuple[RecorderEventStore, ViewDatabase],
) -> None:
    """During a rebuild reads use the complete live table; after the swap the new one equals it."""
    store, views = backend
    for _ in range(20):
        store.save(order_events())
    runner = ProjectionRunner(store, views, OrdersProjection(), batch_size=7)
    runner.ensure()
    runner.catch_up()
    runner.request_rebuild()
    assert runner.state().rebuild_generation == 2
    store.save(order_events("created"))  # the shop keeps selling during the rebuild
    runner.run_once()
    assert current_table(views, "orders") == "orders_g1"
    assert len(table_rows(views, "orders")) == 21
    runner.catch_up()
    state = runner.state()
    assert state.generation == 2
    assert state.rebuild_generation is None
    assert current_table(views, "orders") == "orders_g2"
    rebuilt = table_rows(views, "orders")
    incremental = sorted(views.query("SELECT * FROM orders_g1"))
    assert rebuilt == incremental
    for row in rebuilt:
        assert row[2] == rules.fold(store.load(UUID(row[0]))).status.value
    assert state.position == store.head()


class Exploding(Projection):
    """Fails on the n-th event it sees."""

    name = "exploding"
    topics = OrdersProjection.topics
    schema = ("CREATE TABLE IF NOT EXISTS {t} (position BIGINT PRIMARY KEY)",)

    def __init__(self, fail_at: int) -> None:
        self.fail_at = fail_at

    def apply(self, tx: Tx, table: str, event: DomainEvent, position: int) -> None:  # noqa: ARG002
        if position == self.fail_at:
            raise RuntimeError("handler bug")
        tx.execute(f"INSERT INTO {table} VALUES (%s)", (position,))  # noqa: S608


def test_a_failing_event_stops_the_projection_until_skipped(
    backend: tuple[RecorderEventStore, ViewDatabase],
) -> None:
    """The events before the bad one commit; the projection reports where and why; skip moves on."""
    store, views = backend
    for _ in range(3):
        store.save(order_events())
    runner = ProjectionRunner(store, views, Exploding(fail_at=5), batch_size=100)
    runner.ensure()
    runner.catch_up()
    state = runner.state()
    assert state.state == "failed"
    assert state.error_position == 5
    assert "handler bug" in (state.error or "")
    assert state.position == 4
    assert runner.run_once() == 0
    runner.retry()
    runner.catch_up()
    assert runner.state().state == "failed"
    runner.skip()
    runner.catch_up()
    assert runner.state().state == "live"
    assert runner.state().position == store.head()
    kept = views.query(f"SELECT * FROM {current_table(views, 'exploding')}")  # noqa: S608
    assert len(kept) == store.head() - 1
    runner.request_rebuild()
    runner.catch_up()
    abandoned = runner.state()
    assert (abandoned.state, abandoned.generation, abandoned.rebuild_generation) == (
        "live",
        1,
        None,
    )
    assert "rebuild abandoned" in (abandoned.error or "")


def test_lists_paginate_newest_first_and_find_stuck_orders(
    backend: tuple[RecorderEventStore, ViewDatabase],
) -> None:
    """Cursor pagination walks every order once; stuck paid orders are found by age."""
    store, views = backend
    ids: list[UUID] = []
    for minutes in range(7):
        events = order_events("paid", NOW + timedelta(minutes=minutes))
        store.save(events)
        ids.append(events[0].originator_id)
    runner = ProjectionRunner(store, views, OrdersProjection())
    runner.ensure()
    runner.catch_up()
    models = ReadModels(views)
    seen: list[str] = []
    cursor = None
    while True:
        page = models.orders(OrderSearch(status="paid"), limit=3, cursor=cursor)
        seen += [item["order_id"] for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [str(i) for i in reversed(ids)]
    stuck = models.stuck_orders(NOW + timedelta(minutes=2, seconds=30))
    assert stuck == [(ids[0], "paid"), (ids[1], "paid"), (ids[2], "paid")]
    with pytest.raises(BadCursor):
        models.orders(cursor="not-a-cursor")


def test_one_runner_per_projection_across_processes(pg_schema: str) -> None:
    """On PostgreSQL the runner lock is held by one holder at a time."""
    first, second = PostgresViews(POSTGRES_URL, pg_schema), PostgresViews(POSTGRES_URL, pg_schema)
    try:
        with first.try_lock("projection:orders") as held:
            assert held
            with second.try_lock("projection:orders") as also:
                assert not also
        with second.try_lock("projection:orders") as now_free:
            assert now_free
    finally:
        first.close()
        second.close()


def test_rebuild_of_5000_orders_while_the_shop_keeps_selling(pg_schema: str) -> None:
    """Reads during the rebuild always see every order; after the swap each row equals a fold
    of that order's events."""
    store = open_event_store(postgres_env(pg_schema))
    views = PostgresViews(POSTGRES_URL, pg_schema)
    try:
        for _ in range(50):
            store.save([e for _ in range(100) for e in order_events()])
        runner = ProjectionRunner(store, views, OrdersProjection())
        runner.ensure()
        runner.catch_up()
        runner.request_rebuild()
        models = ReadModels(views)
        placed = 5000
        while runner.state().rebuild_generation is not None:
            runner.run_once()
            store.save(order_events("paid"))  # placed and paid during the rebuild
            placed += 1
            assert sum(models.counts_by_status().values()) >= placed - 1  # complete, never half
        runner.catch_up()
        assert runner.state().generation == 2
        rows = views.query("SELECT order_id, status, version FROM orders_g2")
        assert len(rows) == placed
        for order_id, status, version in rows:
            folded = rules.fold(store.load(UUID(order_id)))
            assert (status, version) == (folded.status.value, folded.version)
    finally:
        views.close()
        store.close()


def test_a_projection_batch_commits_without_waiting_for_the_disk(pg_schema: str) -> None:
    """Rows derived from the log commit with ``synchronous_commit = off``, for that transaction
    only; every other transaction (and the connection after it) waits for the disk."""
    views = PostgresViews(POSTGRES_URL, pg_schema)
    try:
        with views.transaction(durable=False) as tx:
            assert tx.execute("SHOW synchronous_commit") == [("off",)]
        for _ in range(3):  # whichever pooled connection comes next
            with views.transaction() as tx:
                assert tx.execute("SHOW synchronous_commit") == [("on",)]
    finally:
        views.close()
