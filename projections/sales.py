"""The dashboard's read model: per hour and currency, how many orders were placed, paid,
fulfilled, failed and refunded; the revenue and margin of the fulfilled ones; a histogram of
their paid→fulfilled times; and the Kinguin balance last seen in the hour. The same figures
all-time, per currency, are kept in a side table (``{t}_totals``).

Hours add up to days, and percentiles come from the histogram, so the dashboard reads a few
hundred rows however many orders the shop has and however long it has run. A second side table
(``{t}_orders``) keeps what an order's fulfilment needs: its total, its lines' supplier costs and
when it was paid. Counts are
added, never recomputed: the runner commits each batch's rows with its position, so an event is
counted once per generation, and a rebuild counts the log again from the start.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from adapters.views import Tx
from domain.events import (
    CostCapRaised,
    DomainEvent,
    FulfillmentFailed,
    OrderFulfilled,
    OrderPaid,
    OrderPlaced,
    OrderRefunded,
    SupplierBalanceObserved,
)
from projections.base import BatchedProjection, Change

COUNTS = ("placed", "paid", "fulfilled", "failed", "refunded")
_HISTOGRAM = msgspec.json.Decoder(dict[int, int])  # bucket: count, kept as a JSON object
_ENCODER = msgspec.json.Encoder()
BUCKETS_PER_DOUBLING = 4  # a latency bucket is 19 % wide


class SalesProjection(BatchedProjection):
    """Hourly sales, margin, failures, fulfilment times and balance."""

    name = "sales"
    topics = (
        OrderPlaced,
        OrderPaid,
        OrderFulfilled,
        FulfillmentFailed,
        OrderRefunded,
        CostCapRaised,
        SupplierBalanceObserved,
    )
    side_tables = ("orders", "totals")
    schema = (
        "CREATE TABLE IF NOT EXISTS {t} ("
        "hour TEXT NOT NULL, currency TEXT NOT NULL, placed INTEGER NOT NULL, "
        "paid INTEGER NOT NULL, fulfilled INTEGER NOT NULL, failed INTEGER NOT NULL, "
        "refunded INTEGER NOT NULL, revenue TEXT NOT NULL, margin TEXT NOT NULL, "
        "costed INTEGER NOT NULL, refunds TEXT NOT NULL, latency TEXT NOT NULL, balance TEXT, "
        "PRIMARY KEY (hour, currency))",
        "CREATE TABLE IF NOT EXISTS {t}_orders ("
        "order_id TEXT PRIMARY KEY, currency TEXT NOT NULL, total TEXT NOT NULL, "
        "lines TEXT NOT NULL, paid_at TEXT, fulfilled INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS {t}_totals ("
        "currency TEXT PRIMARY KEY, placed INTEGER NOT NULL, "
        "paid INTEGER NOT NULL, fulfilled INTEGER NOT NULL, failed INTEGER NOT NULL, "
        "refunded INTEGER NOT NULL, revenue TEXT NOT NULL, margin TEXT NOT NULL, "
        "costed INTEGER NOT NULL, refunds TEXT NOT NULL, latency TEXT NOT NULL, balance TEXT)",
    )

    def apply_batch(
        self, tx: Tx, table: str, batch: Sequence[tuple[int, DomainEvent]]
    ) -> list[Change]:
        """Load the batch's orders and hours once, count every event in, write each back once;
        the admins' live feed hears which hours changed."""
        work = _Batch(tx, table, {str(e.originator_id) for _, e in batch})
        for _, event in batch:
            work.count(event)
        hours = work.save()
        return [{"projection": self.name, "state": "live", "hours": hours}] if hours else []


class _Order(msgspec.Struct):
    """What the side table keeps of an order."""

    currency: str
    total: Decimal
    lines: dict[str, tuple[int, Decimal | None]]  # product: quantity, unit cost (None: unknown)
    paid_at: datetime | None = None
    fulfilled: bool = False

    def margin(self) -> Decimal | None:
        """The sale total less the supplier cost of its lines, when every cost is known."""
        costs = [(qty, cost) for qty, cost in self.lines.values()]
        if any(cost is None for _, cost in costs):
            return None
        return self.total - sum((qty * (cost or 0) for qty, cost in costs), Decimal(0))


class Hour(msgspec.Struct):
    """One hour's row for one currency."""

    placed: int = 0
    paid: int = 0
    fulfilled: int = 0
    failed: int = 0
    refunded: int = 0
    revenue: Decimal = Decimal(0)
    margin: Decimal = Decimal(0)
    costed: int = 0
    refunds: Decimal = Decimal(0)
    latency: dict[int, int] = msgspec.field(default_factory=dict)
    balance: Decimal | None = None

    def add(self, other: Hour) -> None:
        """Fold another hour's figures in (a day is the sum of its hours)."""
        for column in COUNTS:
            setattr(self, column, getattr(self, column) + getattr(other, column))
        self.revenue += other.revenue
        self.margin += other.margin
        self.costed += other.costed
        self.refunds += other.refunds
        for bucket, count in other.latency.items():
            self.latency[bucket] = self.latency.get(bucket, 0) + count
        if other.balance is not None:
            self.balance = other.balance


def summed(hours: Iterable[Hour]) -> Hour:
    """Several hours' figures as one (the last balance of them kept)."""
    total = Hour()
    for hour in hours:
        total.add(hour)
    return total


HOUR_COLUMNS = (
    "placed", "paid", "fulfilled", "failed", "refunded", "revenue", "margin", "costed",
    "refunds", "latency", "balance",
)  # fmt: skip


def hour_from_row(row: Sequence[Any]) -> Hour:
    """An hour as stored in ``HOUR_COLUMNS`` order."""
    counts = dict(zip(COUNTS, row[:5], strict=True))
    revenue, margin, costed, refunds, latency, balance = row[5:]
    return Hour(
        **counts, revenue=Decimal(revenue), margin=Decimal(margin), costed=costed,
        refunds=Decimal(refunds), latency=_HISTOGRAM.decode(latency),
        balance=None if balance is None else Decimal(balance),
    )  # fmt: skip


def latency_bucket(milliseconds: float) -> int:
    """The histogram bucket of a paid→fulfilled time: bucket ``i`` holds times up to
    ``2 ** (i / 4)`` ms (bucket 0: a millisecond or less)."""
    if milliseconds <= 1:
        return 0
    return math.ceil(BUCKETS_PER_DOUBLING * math.log2(milliseconds))


def percentile(histogram: dict[int, int], fraction: float) -> float | None:
    """The upper bound of the bucket holding the ``fraction`` quantile (None when empty)."""
    total = sum(histogram.values())
    if total == 0:
        return None
    wanted, seen = fraction * total, 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= wanted:
            return round(2 ** (bucket / BUCKETS_PER_DOUBLING), 1)
    return None  # pragma: no cover - seen reaches total


def hour_of(moment: datetime) -> str:
    """The start of the UTC hour holding ``moment`` (the rows' key)."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0).isoformat()


class _Batch:
    """One batch's orders, hours and totals, loaded once and written back once."""

    def __init__(self, tx: Tx, table: str, order_ids: Iterable[str]) -> None:
        self._tx, self._table = tx, table
        self._orders = self._load_orders(sorted(order_ids))
        self._dirty_orders: set[str] = set()
        self._hours: dict[tuple[str, str], Hour] = {}
        self._totals: dict[str, Hour] = {}

    def count(self, event: DomainEvent) -> None:
        """Count one event into its hour and into the all-time totals."""
        counted = self._delta(event)
        if counted is not None:
            currency, delta = counted
            self._hour(event, currency).add(delta)
            self._total(currency).add(delta)

    def _delta(self, event: DomainEvent) -> tuple[str, Hour] | None:
        """What the event adds, in which currency (None: nothing to count)."""
        order_id = str(event.originator_id)
        if isinstance(event, SupplierBalanceObserved):
            return event.currency, Hour(balance=event.balance)
        if isinstance(event, OrderPlaced):
            lines = {i.product_id: (i.quantity, i.priced_cost) for i in event.items}
            self._orders[order_id] = _Order(currency=event.currency, total=event.total, lines=lines)
            self._dirty_orders.add(order_id)
            return event.currency, Hour(placed=1)
        order = self._orders.get(order_id)
        if order is None:
            return None  # an order whose placing this generation never saw (cannot happen from 0)
        self._dirty_orders.add(order_id)
        return order.currency, _order_delta(order, event)

    def _hour(self, event: DomainEvent, currency: str) -> Hour:
        key = (hour_of(event.timestamp), currency)
        if key not in self._hours:
            found = self._tx.execute(
                f"SELECT {', '.join(HOUR_COLUMNS)} FROM {self._table} "  # noqa: S608
                "WHERE hour = %s AND currency = %s",
                key,
            )
            self._hours[key] = hour_from_row(found[0]) if found else Hour()
        return self._hours[key]

    def _total(self, currency: str) -> Hour:
        if currency not in self._totals:
            found = self._tx.execute(
                f"SELECT {', '.join(HOUR_COLUMNS)} FROM {self._table}_totals "  # noqa: S608
                "WHERE currency = %s",
                (currency,),
            )
            self._totals[currency] = hour_from_row(found[0]) if found else Hour()
        return self._totals[currency]

    def _load_orders(self, order_ids: list[str]) -> dict[str, _Order]:
        if not order_ids:
            return {}
        marks = ", ".join(["%s"] * len(order_ids))
        found = self._tx.execute(
            f"SELECT order_id, currency, total, lines, paid_at, fulfilled "  # noqa: S608
            f"FROM {self._table}_orders WHERE order_id IN ({marks})",
            order_ids,
        )
        return {row[0]: _order_from_row(row[1:]) for row in found}

    def save(self) -> list[str]:
        """Write the changed orders, hours and totals; the hours changed."""
        orders = [(order_id, self._orders[order_id]) for order_id in sorted(self._dirty_orders)]
        if orders:
            self._tx.execute_many(
                f"INSERT INTO {self._table}_orders VALUES (%s, %s, %s, %s, %s, %s) "  # noqa: S608
                "ON CONFLICT (order_id) DO UPDATE SET lines = excluded.lines, "
                "paid_at = excluded.paid_at, fulfilled = excluded.fulfilled",
                [_order_values(order_id, order) for order_id, order in orders],
            )
        hours = [((hour, currency), figures) for (hour, currency), figures in self._hours.items()]
        totals = [((currency,), figures) for currency, figures in self._totals.items()]
        _upsert(self._tx, self._table, ("hour", "currency"), hours)
        _upsert(self._tx, f"{self._table}_totals", ("currency",), totals)
        return sorted({hour for hour, _ in self._hours})


def _upsert(
    tx: Tx, table: str, key: tuple[str, ...], rows: Sequence[tuple[tuple[str, ...], Hour]]
) -> None:
    """Write figures under their key (``hour, currency`` or ``currency``)."""
    if not rows:
        return
    columns = (*key, *HOUR_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in HOUR_COLUMNS)
    tx.execute_many(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "  # noqa: S608
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}",
        [(*values, *_hour_values(figures)) for values, figures in sorted(rows, key=_first)],
    )


def _first(row: tuple[tuple[str, ...], Hour]) -> tuple[str, ...]:
    return row[0]


def _order_delta(order: _Order, event: DomainEvent) -> Hour:
    """What one event of a known order adds; the order's kept state follows it."""
    if isinstance(event, OrderPaid):
        order.paid_at = order.paid_at or event.timestamp
        return Hour(paid=1)
    if isinstance(event, OrderFulfilled):
        return _fulfilled(order, event.timestamp)
    if isinstance(event, FulfillmentFailed):
        return Hour(failed=1)
    if isinstance(event, OrderRefunded):
        return Hour(refunded=1, refunds=event.amount)
    if isinstance(event, CostCapRaised) and event.product_id in order.lines:
        quantity, _ = order.lines[event.product_id]
        order.lines[event.product_id] = (quantity, event.new_cap)
    return Hour()


def _fulfilled(order: _Order, at: datetime) -> Hour:
    """A fulfilment's revenue, margin (when every cost is known) and paid→fulfilled time."""
    if order.fulfilled:
        return Hour()
    order.fulfilled = True
    margin = order.margin()
    latency = {}
    if order.paid_at is not None:
        latency = {latency_bucket((at - order.paid_at).total_seconds() * 1000): 1}
    return Hour(
        fulfilled=1,
        revenue=order.total,
        margin=Decimal(0) if margin is None else margin,
        costed=int(margin is not None),
        latency=latency,
    )


def _order_from_row(row: Sequence[Any]) -> _Order:
    currency, total, lines, paid_at, fulfilled = row
    return _Order(
        currency=currency,
        total=Decimal(total),
        lines={
            product: (quantity, None if cost is None else Decimal(cost))
            for product, (quantity, cost) in json.loads(lines).items()
        },
        paid_at=None if paid_at is None else datetime.fromisoformat(paid_at),
        fulfilled=bool(fulfilled),
    )


def _order_values(order_id: str, order: _Order) -> tuple[object, ...]:
    lines = {p: (q, None if c is None else str(c)) for p, (q, c) in order.lines.items()}
    paid_at = None if order.paid_at is None else order.paid_at.isoformat()
    return (order_id, order.currency, str(order.total), json.dumps(lines), paid_at,
            int(order.fulfilled))  # fmt: skip


def _hour_values(hour: Hour) -> tuple[object, ...]:
    return (
        hour.placed, hour.paid, hour.fulfilled, hour.failed, hour.refunded, str(hour.revenue),
        str(hour.margin), hour.costed, str(hour.refunds),
        _ENCODER.encode(dict(sorted(hour.latency.items()))).decode(),
        None if hour.balance is None else str(hour.balance),
    )  # fmt: skip
