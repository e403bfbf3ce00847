"""The orders read model: one row per order with its status and the columns admins filter on,
kept by folding each event onto the stored order with the domain's own ``apply`` (so the view
can never disagree with the aggregate about what an event means)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import msgspec

from adapters.views import Tx
from domain import order as rules
from domain.events import ORDER_EVENTS, DomainEvent, KeysReserved, OrderFulfilled, OrderPaid
from domain.order import Order
from projections.base import BatchedProjection, Change


class OrdersProjection(BatchedProjection):
    """Orders by status, with timestamps, reservation and failure columns."""

    name = "orders"
    topics = ORDER_EVENTS
    version = 3  # 2: the products column (the admins' search by product); 3: returns in flags
    schema = (
        "CREATE TABLE IF NOT EXISTS {t} ("
        "order_id TEXT PRIMARY KEY, owner TEXT NOT NULL, status TEXT NOT NULL, "
        "version INTEGER NOT NULL, total TEXT NOT NULL, currency TEXT NOT NULL, "
        "supplier_order_id TEXT, supplier_status TEXT, failure_reason TEXT, flags TEXT, "
        "key_count INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, "
        "paid_at TEXT, reserved_at TEXT, fulfilled_at TEXT, notified INTEGER NOT NULL, "
        "position BIGINT NOT NULL, state TEXT NOT NULL, products TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS {t}_status ON {t} (status, updated_at)",
        "CREATE INDEX IF NOT EXISTS {t}_updated ON {t} (updated_at)",
    )
    _decoder: ClassVar[msgspec.json.Decoder[Order]] = msgspec.json.Decoder(Order)

    def apply_batch(
        self, tx: Tx, table: str, batch: Sequence[tuple[int, DomainEvent]]
    ) -> list[Change]:
        """Load each order of the batch once, fold its events in, write it back once; a new
        status is news for live subscribers. Events at or before a row's position are skipped,
        so a replay changes nothing."""
        keyed = [(str(event.originator_id), position, event) for position, event in batch]
        rows = self._load(tx, table, {order_id for order_id, _, _ in keyed})
        changes: list[Change] = []
        for order_id, position, event in keyed:
            row = rows.get(order_id)
            if row is not None and row.position >= position:
                continue
            change, rows[order_id] = self._fold(row, event, position)
            if change is not None:
                changes.append(change)
        _upsert_all(tx, table, [r for r in rows.values() if r.dirty])
        return changes

    def _load(self, tx: Tx, table: str, order_ids: set[str]) -> dict[str, _Row]:
        marks = ", ".join(["%s"] * len(order_ids))
        found = tx.execute(
            f"SELECT order_id, state, position, paid_at, reserved_at, fulfilled_at FROM {table} "  # noqa: S608
            f"WHERE order_id IN ({marks})",
            sorted(order_ids),
        )
        return {
            r[0]: _Row(order=self._decoder.decode(r[1]), position=r[2], stamps=tuple(r[3:6]))
            for r in found
        }

    def _fold(
        self, row: _Row | None, event: DomainEvent, position: int
    ) -> tuple[Change | None, _Row]:
        order = rules.apply(row.order if row else None, event)
        stamps = _stamped(row.stamps if row else (None, None, None), event)
        new = _Row(order=order, position=position, stamps=stamps, dirty=True)
        if row is not None and row.order.status is order.status:
            return None, new
        change = {
            "order_id": str(order.id),
            "owner": order.owner,
            "status": order.status.value,
            "version": order.version,
            "at": event.timestamp.isoformat(),
        }
        return change, new


class _Row(msgspec.Struct):
    """An order row being worked on within one batch."""

    order: Order
    position: int
    stamps: tuple[str | None, str | None, str | None]  # paid_at, reserved_at, fulfilled_at
    dirty: bool = False


_STAMPED = (OrderPaid, KeysReserved, OrderFulfilled)
_COLUMNS = (
    "order_id", "owner", "status", "version", "total", "currency", "supplier_order_id",
    "supplier_status", "failure_reason", "flags", "key_count", "created_at", "updated_at",
    "paid_at", "reserved_at", "fulfilled_at", "notified", "position", "state", "products",
)  # fmt: skip
_ENCODER = msgspec.json.Encoder()


def _stamped(
    stamps: tuple[str | None, str | None, str | None], event: DomainEvent
) -> tuple[str | None, str | None, str | None]:
    """Keep the first time each milestone (paid, reserved, fulfilled) was reached."""
    if not isinstance(event, _STAMPED):
        return stamps
    paid, reserved, fulfilled = (
        stamp or (event.timestamp.isoformat() if isinstance(event, kind) else None)
        for stamp, kind in zip(stamps, _STAMPED, strict=True)
    )
    return paid, reserved, fulfilled


def _upsert_all(tx: Tx, table: str, rows: list[_Row]) -> None:
    if not rows:
        return
    updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "order_id")
    tx.execute_many(
        f"INSERT INTO {table} ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))}) "  # noqa: S608
        f"ON CONFLICT (order_id) DO UPDATE SET {updates}",
        [_values(row) for row in rows],
    )


def _values(row: _Row) -> tuple[object, ...]:
    order = row.order
    return (
        str(order.id), order.owner, order.status.value, order.version, str(order.total),
        order.currency, order.supplier_order_id, order.supplier_status, order.failure_reason,
        _flags(order), len(order.keys), order.placed_at.isoformat(),
        order.updated_at.isoformat(), *row.stamps, int(order.notified), row.position,
        _ENCODER.encode(order).decode(), _products(order),
    )  # fmt: skip


def _flags(order: Order) -> str | None:
    """Payment flags, why the purchase waits while it does (``held: …``), and a key return
    under way (or one that never finished): what the admins' queue lists."""
    held = (f"held: {order.held}",) if order.held else ()
    returning = ("key return under way",) if order.returning else ()
    return "; ".join((*order.flags, *held, *returning)) or None


def _products(order: Order) -> str:
    """The order's product ids between commas (``,p1,p2,``): a search for one is a LIKE."""
    return "," + ",".join(sorted({item.product_id for item in order.items})) + ","
