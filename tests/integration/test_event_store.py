"""The event store contract, run against the in-memory, SQLite and PostgreSQL recorders."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from adapters.eventstore import RecorderEventStore, topic_of
from application.errors import ConcurrencyConflict
from domain import order as rules
from domain import payments
from domain.events import DomainEvent, LineItem, OrderPlaced, PaymentInvoiceCreated
from domain.order import Order
from domain.webhooks import delivery_recorded

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def new_order() -> tuple[Order, list[DomainEvent]]:
    events = rules.place(
        uuid4(),
        owner="alice",
        email="alice@example.com",
        currency="eur",
        items=[LineItem(product_id="p", quantity=1, unit_price=Decimal("1.50"))],
        now=NOW,
    )
    return rules.fold(events), events


def test_round_trip(store: RecorderEventStore) -> None:
    """Saved events load back equal, in order, and can be cut at a version."""
    order, placed = new_order()
    invoice = payments.invoice_created(order, invoice_id="1", invoice_url="u", now=NOW)
    store.save(placed)
    store.save(invoice)
    assert store.load(order.id) == [*placed, *invoice]
    assert store.load(order.id, until_version=1) == placed
    assert store.load(uuid4()) == []


def test_optimistic_concurrency(store: RecorderEventStore) -> None:
    """Two writers deciding from the same version: the second append is a conflict."""
    order, placed = new_order()
    store.save(placed)
    first = payments.invoice_created(order, invoice_id="1", invoice_url="u", now=NOW)
    second = payments.invoice_created(order, invoice_id="2", invoice_url="v", now=NOW)
    store.save(first)
    with pytest.raises(ConcurrencyConflict):
        store.save(second)
    assert store.load(order.id)[-1] == first[0]


def test_multi_aggregate_save_is_atomic(store: RecorderEventStore) -> None:
    """A delivery and its order events are saved together or not at all."""
    order, placed = new_order()
    store.save(placed)
    taken = payments.invoice_created(order, invoice_id="1", invoice_url="u", now=NOW)
    store.save(taken)
    delivery = delivery_recorded(
        provider="nowpayments", natural_key="9:finished", event_name="ipn", order_id=order.id,
        body="{}", outcome="x", now=NOW,
    )  # fmt: skip
    with pytest.raises(ConcurrencyConflict):
        store.save(
            [delivery, *payments.invoice_created(order, invoice_id="2", invoice_url="v", now=NOW)]
        )
    assert store.load(delivery.originator_id) == []
    store.save([delivery])
    with pytest.raises(ConcurrencyConflict):
        store.save([delivery])


def test_notifications_follow_the_log_and_filter_by_type(store: RecorderEventStore) -> None:
    """The log lists events in append order after a position, filtered by topic."""
    start = store.head()
    orders = [new_order() for _ in range(3)]
    for order, placed in orders:
        store.save(placed)
        store.save(payments.invoice_created(order, invoice_id="1", invoice_url="u", now=NOW))
    everything = store.notifications(start, 100)
    assert [type(e) for _, e in everything] == [OrderPlaced, PaymentInvoiceCreated] * 3
    invoices = store.notifications(start, 100, [topic_of(PaymentInvoiceCreated)])
    assert [e.originator_id for _, e in invoices] == [o.id for o, _ in orders]
    assert store.head() == everything[-1][0].id
    assert store.notifications(everything[-1][0].id, 100) == []


def test_append_listeners_are_called(store: RecorderEventStore) -> None:
    """In-process listeners hear about every append."""
    calls: list[int] = []
    store.on_append(lambda: calls.append(1))
    store.save(new_order()[1])
    assert calls == [1]
