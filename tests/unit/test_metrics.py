"""The paid → fulfilled histogram: from the payment the process manager saw go by, or, after a
restart between the two, from the order's own events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from prometheus_client import CollectorRegistry

from adapters.metrics import FulfilmentLatency
from domain.events import DomainEvent, OrderFulfilled, OrderPaid

PAID_AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def paid(order_id: UUID) -> OrderPaid:
    return OrderPaid(
        originator_id=order_id, originator_version=3, timestamp=PAID_AT, payment_id="1"
    )


def fulfilled(order_id: UUID, after_s: float) -> OrderFulfilled:
    return OrderFulfilled(
        originator_id=order_id,
        originator_version=6,
        timestamp=PAID_AT + timedelta(seconds=after_s),
        key_count=1,
    )


def test_a_payment_seen_going_by_is_not_read_again() -> None:
    registry = CollectorRegistry()
    reads: list[UUID] = []

    def load(order_id: UUID) -> Sequence[DomainEvent]:
        reads.append(order_id)
        return [paid(order_id)]

    latency = FulfilmentLatency(registry, load)
    handle = latency.after(lambda _event: None)
    seen, restarted = uuid4(), uuid4()
    handle(paid(seen))
    handle(fulfilled(seen, 0.04))
    handle(fulfilled(restarted, 2.0))  # its payment went by before a restart
    assert reads == [restarted]
    assert registry.get_sample_value("bitloot_paid_to_fulfilled_seconds_count") == 2
    assert registry.get_sample_value("bitloot_paid_to_fulfilled_seconds_sum") == 2.04
    bucket = {"le": "0.05"}
    assert registry.get_sample_value("bitloot_paid_to_fulfilled_seconds_bucket", bucket) == 1
