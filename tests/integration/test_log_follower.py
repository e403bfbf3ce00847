"""The process manager's log follower: at-least-once handling, tracked position, resumption after
a restart, and prompt wake-ups across processes through PostgreSQL LISTEN/NOTIFY."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import pytest
from eventsourcing.persistence import Tracking

from adapters.eventstore import RecorderEventStore, open_event_store
from adapters.log_follower import LogFollower, PostgresWakeUp
from adapters.log_reader import LogReader
from application.process_manager import ProcessManager
from domain import order as rules
from domain import payments
from domain.events import DomainEvent, LineItem
from domain.payments import PaymentNotice
from tests.conftest import POSTGRES_URL, postgres_env
from tests.fakes import RecordingDispatcher
from tests.support import wait_until

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def paid_order_events() -> list[DomainEvent]:
    placed = rules.place(
        uuid4(), owner="a", email="a@b.co", currency="eur",
        items=[LineItem(product_id="p", quantity=1, unit_price=Decimal(1))], now=NOW,
    )  # fmt: skip
    order = rules.fold(placed)
    invoiced = payments.invoice_created(order, invoice_id="i", invoice_url="u", now=NOW)
    order = rules.fold([*placed, *invoiced])
    notice = PaymentNotice(
        payment_id="1",
        payment_status="finished",
        invoice_id="i",
        price_amount=Decimal(1),
        price_currency="eur",
        pay_amount=Decimal("0.0001"),
        actually_paid=Decimal("0.0001"),
        pay_currency="btc",
    )
    paid = payments.payment_notified(order, notice, NOW)
    return [*placed, *invoiced, *paid]


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "sqlite":
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(tmp_path / "es.db"),
        }
    return postgres_env(request.getfixturevalue("pg_schema"))


def test_process_manager_resumes_from_its_tracked_position(env: dict[str, str]) -> None:
    """After a restart the follower handles only what it had not handled before."""
    store = open_event_store(env)
    first_orders = [paid_order_events() for _ in range(3)]
    for events in first_orders:
        store.save(events)
    dispatcher = RecordingDispatcher()
    manager = ProcessManager(dispatcher)
    follower = LogFollower("process_manager", store, manager.handle, manager.topics)
    while follower.run_once():
        pass
    assert dispatcher.sent == [("reserve", e[0].originator_id) for e in first_orders]
    position = follower.position
    store.close()

    restarted_store = open_event_store(env)
    later = paid_order_events()
    restarted_store.save(later)
    again = RecordingDispatcher()
    manager = ProcessManager(again)
    restarted = LogFollower("process_manager", restarted_store, manager.handle, manager.topics)
    assert restarted.position == position
    while restarted.run_once():
        pass
    assert again.sent == [("reserve", later[0].originator_id)]
    restarted_store.close()


def test_a_position_recorded_by_a_broken_try_is_not_an_error(env: dict[str, str]) -> None:
    """The library retries a tracking insert whose connection broke; when the broken try had
    committed (a database restart at the commit), the retry meets the recorded position: the
    follower takes it as recorded, handles nothing twice, and carries on."""
    store = open_event_store(env)
    orders = [paid_order_events() for _ in range(2)]
    for events in orders:
        store.save(events)
    head = store.head()
    store.tracking_recorder().insert_tracking(Tracking("process_manager", head))  # the broken try
    dispatcher = RecordingDispatcher()
    manager = ProcessManager(dispatcher)
    follower = LogFollower("process_manager", store, manager.handle, manager.topics)
    follower._position = 0  # as it stood in memory before the broken try
    follower.run_once()
    assert follower.position == head
    assert len(dispatcher.sent) == 2
    store.save(paid_order_events())
    follower.run_once()
    assert len(dispatcher.sent) == 3
    store.close()


def test_background_follower_is_woken_by_appends_in_process(env: dict[str, str]) -> None:
    """A save in this process wakes the follower long before its poll interval."""
    store = open_event_store(env)
    dispatcher = RecordingDispatcher()
    manager = ProcessManager(dispatcher)
    reader = LogReader(store, [LogFollower("pm", store, manager.handle, manager.topics)],
                       poll_interval=30)  # fmt: skip
    reader.start()
    try:
        time.sleep(0.1)
        events = paid_order_events()
        started = time.monotonic()
        store.save(events)
        assert wait_until(lambda: dispatcher.sent)
        assert time.monotonic() - started < 2
    finally:
        reader.stop()
        store.close()


def test_postgres_notify_wakes_a_follower_in_another_process(pg_schema: str) -> None:
    """An append by another store (as from another process) wakes the follower via LISTEN."""
    follower_store: RecorderEventStore = open_event_store(postgres_env(pg_schema))
    writer_store = open_event_store(postgres_env(pg_schema))
    dispatcher = RecordingDispatcher()
    manager = ProcessManager(dispatcher)
    follower = LogFollower("pm", follower_store, manager.handle, manager.topics)
    reader = LogReader(follower_store, [follower], poll_interval=30)
    wake = PostgresWakeUp(POSTGRES_URL, "bitloot_events", reader.wake)
    reader.start()
    wake.start()
    try:
        time.sleep(0.3)
        started = time.monotonic()
        writer_store.save(paid_order_events())
        assert wait_until(lambda: dispatcher.sent)
        assert time.monotonic() - started < 2
    finally:
        wake.stop()
        reader.stop()
        writer_store.close()
        follower_store.close()


def test_each_batch_is_shown_whole_before_its_events_are_handled(env: dict[str, str]) -> None:
    """``look_ahead`` sees the batch's events of the follower's topics before the first of them
    is handled."""
    store = open_event_store(env)
    orders = [paid_order_events() for _ in range(2)]
    for events in orders:
        store.save(events)
    seen: list[str] = []
    manager = ProcessManager(RecordingDispatcher())

    def handle(event: DomainEvent) -> None:
        seen.append(f"handle {type(event).__name__}")
        manager.handle(event)

    def look_ahead(batch: Sequence[DomainEvent]) -> None:
        seen.append(f"look at {[type(e).__name__ for e in batch]}")

    follower = LogFollower("process_manager", store, handle, manager.topics, look_ahead=look_ahead)
    while follower.run_once():
        pass
    assert seen == ["look at ['OrderPaid', 'OrderPaid']", "handle OrderPaid", "handle OrderPaid"]
    store.close()
