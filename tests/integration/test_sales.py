"""The dashboard's ``sales`` read model on SQLite and PostgreSQL: hours and days add up what the
log says (orders, revenue, margin at the accepted cost, failures, refunds, paid→fulfilled times,
the supplier balance); a rebuild counts the same; the dashboard reads it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest

from adapters.eventstore import RecorderEventStore
from adapters.views import ViewDatabase
from domain.account import balance_observed
from domain.events import (
    CostCapRaised,
    DomainEvent,
    FulfillmentFailed,
    LineItem,
    OrderFulfilled,
    OrderPaid,
    OrderPlaced,
    OrderRefunded,
)
from projections.orders import OrdersProjection
from projections.queries import ReadModels
from projections.runner import ProjectionRunner
from projections.sales import SalesProjection, latency_bucket, percentile
from tests.integration.test_projections import backend, table_rows  # noqa: F401 - a fixture

NOON = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def sale(
    at: datetime,
    *,
    fulfilled_after: timedelta | None = None,
    failed: bool = False,
    refunded: bool = False,
    raised_cap: Decimal | None = None,
) -> list[DomainEvent]:
    """One order of two keys at 10.00 EUR (cost 7.00 each), paid at ``at``; then fulfilled,
    failed or refunded as asked (a raised cost first, if given)."""
    order_id: UUID = uuid4()
    events: list[DomainEvent] = []

    def add(cls: type[DomainEvent], moment: datetime, **fields: Any) -> None:
        events.append(
            cls(originator_id=order_id, originator_version=len(events) + 1, timestamp=moment,
                **fields)
        )  # fmt: skip

    line = LineItem(product_id="p", quantity=2, unit_price=Decimal("10.00"),
                    priced_cost=Decimal("7.00"))  # fmt: skip
    add(OrderPlaced, at, owner="alice", email="", currency="eur", items=(line,),
        total=Decimal("20.00"))  # fmt: skip
    add(OrderPaid, at, payment_id="p1", amount_received=Decimal("20.00"))
    if raised_cap is not None:
        add(CostCapRaised, at, by="admin", product_id="p", old_cap=Decimal("7.00"),
            new_cap=raised_cap, margin=Decimal("10.00") - raised_cap)  # fmt: skip
    if failed:
        add(FulfillmentFailed, at + timedelta(seconds=1), reason="supplier_unavailable")
    if refunded:
        add(OrderRefunded, at + timedelta(seconds=2), reference="r", amount=Decimal("20.00"))
    if fulfilled_after is not None:
        add(OrderFulfilled, at + fulfilled_after, key_count=2)
    return events


def caught_up(
    store: RecorderEventStore, views: ViewDatabase, batch_size: int = 100
) -> ProjectionRunner:
    """The sales projection caught up (and the orders one, which the dashboard counts from)."""
    for projection in (OrdersProjection(), SalesProjection()):
        runner = ProjectionRunner(store, views, projection, batch_size=batch_size)
        runner.ensure()
        runner.catch_up()
    return runner


def test_hours_and_days_add_up_the_log(backend: tuple[RecorderEventStore, ViewDatabase]) -> None:  # noqa: F811
    """Three fulfilled (one at a raised cost), one failed then refunded: counts, revenue,
    margin, failure rate and fulfilment times land in their hours; the balance too."""
    store, views = backend
    store.save(sale(NOON, fulfilled_after=timedelta(milliseconds=100)))
    store.save(sale(NOON + timedelta(minutes=5), fulfilled_after=timedelta(milliseconds=400)))
    store.save(sale(NOON + timedelta(hours=1), fulfilled_after=timedelta(seconds=2),
                    raised_cap=Decimal("8.50")))  # fmt: skip
    store.save(sale(NOON + timedelta(hours=1), failed=True, refunded=True))
    store.save(balance_observed(None, Decimal("120.50"), NOON + timedelta(hours=1, minutes=3)))
    runner = caught_up(store, views, batch_size=4)

    dash = ReadModels(views).dashboard("hour", NOON + timedelta(hours=1, minutes=30))
    noon, one = dash["series"][-2], dash["series"][-1]
    assert len(dash["series"]) == 48
    assert dash["series"][0] == {**dash["series"][0], "placed": 0, "fulfilled": 0, "balance": None}
    assert (noon["at"], noon["placed"], noon["paid"], noon["fulfilled"]) == (
        "2026-12-06T12:00:00+00:00", 2, 2, 2)  # fmt: skip
    assert (noon["revenue"], noon["margin"]) == ({"eur": "40.00"}, {"eur": "12.00"})
    assert (one["fulfilled"], one["failed"], one["refunded"]) == (1, 1, 1)
    assert (one["revenue"], one["margin"], one["failure_rate"]) == (
        {"eur": "20.00"}, {"eur": "3.00"}, 0.5)  # fmt: skip
    assert one["balance"] == "120.50"
    assert one["latency_ms"]["count"] == 1
    assert 2000 <= one["latency_ms"]["median"] < 2000 * 1.19
    assert dash["revenue"] == {"eur": "60.00"}
    assert dash["margin"] == {"eur": "15.00"}
    assert dash["failure_rate"] == 0.25
    assert dash["supplier_balance"] == {"eur": "120.50", "at": "2026-12-06T13:00:00+00:00"}
    assert dash["fulfilment_latency_ms"]["count"] == 3
    assert 400 <= dash["fulfilment_latency_ms"]["median"] < 400 * 1.19

    days = ReadModels(views).dashboard("day", NOON)["series"]
    assert len(days) == 30
    assert days[-1]["at"] == "2026-12-06T00:00:00+00:00"
    assert (days[-1]["placed"], days[-1]["fulfilled"], days[-1]["revenue"]) == (
        4, 3, {"eur": "60.00"})  # fmt: skip

    before = table_rows(views, "sales")
    rebuilt = runner.request_rebuild().rebuild_generation
    runner.catch_up()
    assert runner.state().generation == rebuilt
    assert table_rows(views, "sales") == before


def test_unknown_costs_leave_the_margin_out(
    backend: tuple[RecorderEventStore, ViewDatabase],  # noqa: F811
) -> None:
    """An order whose line has no recorded cost adds revenue but no margin."""
    store, views = backend
    events = sale(NOON, fulfilled_after=timedelta(seconds=1))
    placed = events[0]
    assert isinstance(placed, OrderPlaced)
    line = LineItem(product_id="p", quantity=2, unit_price=Decimal("10.00"))
    events[0] = OrderPlaced(
        originator_id=placed.originator_id, originator_version=1, timestamp=NOON, owner="alice",
        email="", currency="eur", items=(line,), total=Decimal("20.00"),
    )  # fmt: skip
    store.save(events)
    caught_up(store, views)
    dash = ReadModels(views).dashboard("hour", NOON)
    assert dash["revenue"] == {"eur": "20.00"}
    assert dash["margin"] == {}
    assert dash["series"][-1]["margin"] == {"eur": "0"}


@pytest.mark.parametrize(("ms", "fraction"), [(1, 0.5), (100, 0.5), (5_000, 0.95)])
def test_a_percentile_is_its_buckets_upper_bound(ms: float, fraction: float) -> None:
    """Within 19 % above the true value, never below."""
    found = percentile({latency_bucket(ms): 3}, fraction)
    assert found is not None
    assert ms <= found < ms * 1.19
    assert percentile({}, 0.5) is None
