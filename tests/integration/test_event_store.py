"""The event store contract, run against the in-memory, SQLite and PostgreSQL recorders."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from adapters.eventstore import GroupCommit, RecorderEventStore, topics_of
from application.errors import ConcurrencyConflict
from application.orders import Orders
from domain import order as rules
from domain import payments
from domain.events import DomainEvent, LineItem, OrderPlaced, PaymentInvoiceCreated
from domain.order import Order
from domain.webhooks import delivery_recorded
from tests.support import wait_until

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
    invoices = store.notifications(start, 100, topics_of([PaymentInvoiceCreated]))
    assert [e.originator_id for _, e in invoices] == [o.id for o, _ in orders]
    assert store.head() == everything[-1][0].id
    assert store.notifications(everything[-1][0].id, 100) == []


def test_append_listeners_are_called(store: RecorderEventStore) -> None:
    """In-process listeners hear about every append."""
    calls: list[int] = []
    store.on_append(lambda: calls.append(1))
    store.save(new_order()[1])
    assert calls == [1]


def test_concurrent_saves_are_committed_together_and_conflicts_stay_per_aggregate(
    store: RecorderEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty writers at once: ten place new orders, ten race to invoice one order from the same
    version. Every new order is stored; exactly one invoice wins and the nine others are
    conflicts; and fewer transactions than saves were needed."""
    contested, placed = new_order()
    store.save(placed)
    transactions: list[int] = []
    insert = store._insert

    def counted(stored: Sequence[StoredEvent]) -> Sequence[int]:
        transactions.append(len(stored))
        time.sleep(0.005)  # a commit that takes a moment, as a real one does, lets others queue
        return insert(stored)

    monkeypatch.setattr(store, "_group", GroupCommit(counted))  # the store's insert, counted
    start = threading.Barrier(20)
    outcomes: dict[int, str] = {}
    new_orders = [new_order() for _ in range(10)]

    def write(index: int) -> None:
        if index < 10:
            events = new_orders[index][1]
        else:
            events = payments.invoice_created(
                contested, invoice_id=str(index), invoice_url="u", now=NOW
            )
        start.wait()
        try:
            store.save(events)
            outcomes[index] = "saved"
        except ConcurrencyConflict:
            outcomes[index] = "conflict"

    threads = [threading.Thread(target=write, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [outcomes[i] for i in range(10)] == ["saved"] * 10
    assert sorted(outcomes[i] for i in range(10, 20)) == ["conflict"] * 9 + ["saved"]
    for order, events in new_orders:
        assert store.load(order.id) == events
    assert len(store.load(contested.id)) == 2
    grouped = [size for size in transactions if size > 3]
    assert grouped, f"no save was committed with another: {transactions}"


def test_a_conflict_in_a_group_fails_its_own_save_and_the_rest_commit_together(
    store: RecorderEventStore, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three saves queue behind a commit and go as one group; one of them takes a version
    already stored. It alone fails. On PostgreSQL, which names the aggregate, the other two
    commit together in one more transaction; elsewhere each of the three is tried alone."""
    contested, placed = new_order()
    store.save(placed)
    late = payments.invoice_created(contested, invoice_id="1", invoice_url="u", now=NOW)
    store.save(late)
    stale = payments.invoice_created(contested, invoice_id="2", invoice_url="u", now=NOW)
    saves = [new_order()[1], new_order()[1], stale, new_order()[1]]
    sizes: list[int] = []
    committing, release = threading.Event(), threading.Event()
    insert = store._insert

    def held(stored: Sequence[StoredEvent]) -> Sequence[int]:
        if not committing.is_set():  # the first commit waits for the three to queue behind it
            committing.set()
            release.wait(10)
        sizes.append(len(stored))
        return insert(stored)

    group = GroupCommit(held)
    monkeypatch.setattr(store, "_group", group)  # the store's insert, observed
    outcomes: dict[int, str] = {}

    def write(index: int) -> None:
        try:
            store.save(saves[index])
            outcomes[index] = "saved"
        except ConcurrencyConflict:
            outcomes[index] = "conflict"

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    threads[0].start()
    assert committing.wait(5)
    for thread in threads[1:]:
        thread.start()
    assert wait_until(lambda: len(group._queue) == 3)
    release.set()
    for thread in threads:
        thread.join()
    assert outcomes == {0: "saved", 1: "saved", 2: "conflict", 3: "saved"}
    one = len(saves[0])
    if request.node.callspec.params["store"] == "postgres":
        assert sizes == [one, 2 * one + 1, 2 * one]
    else:
        assert sizes == [one, 2 * one + 1, one, 1, one]
    assert store.load(contested.id) == [*placed, *late]


def test_a_decision_on_a_known_order_that_is_out_of_date_is_made_again(
    store: RecorderEventStore,
) -> None:
    """``Orders.decide`` with the order the caller holds saves without reading it again; when
    another writer came first, the taken version sends it back to read and decide again."""
    order, placed = new_order()
    orders = Orders(store)
    orders.save(placed)
    reads: list[UUID] = []
    load = store.load

    def counted(aggregate_id: UUID, **versions: int | None) -> list[DomainEvent]:
        reads.append(aggregate_id)
        return load(aggregate_id, **versions)

    store.load = counted  # type: ignore[method-assign]

    def invoice(o: Order) -> list[DomainEvent]:
        return (
            []
            if o.invoice_id
            else payments.invoice_created(o, invoice_id="7", invoice_url="u7", now=NOW)
        )

    fresh = orders.decide(order.id, invoice, order)
    assert (fresh.invoice_id, fresh.version, reads) == ("7", order.version + 1, [])
    stale = order  # another writer has since added the invoice
    again = orders.decide(order.id, lambda o: [] if o.invoice_id else invoice(o), stale)
    assert (again.invoice_id, again.version, len(reads)) == ("7", fresh.version, 1)
    assert [type(e).__name__ for e in load(order.id)] == ["OrderPlaced", "PaymentInvoiceCreated"]
