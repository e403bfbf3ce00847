"""The orders read model: one row per order with its status and the columns admins filter on,
kept by folding each event onto the stored order with the domain's own ``apply`` (so the view
can never disagree with the aggregate about what an event means)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import msgspec

from adapters.views import Tx
from domain import order as rules
from domain.events import ORDER_EVENTS, DomainEvent, KeysReserved, OrderFulfilled, OrderPaid
from domain.order import Order
from projections.base import Change, Projection


class OrdersProjection(Projection):
    """Orders by status, with timestamps, reservation and failure columns."""

    name = "orders"
    topics = ORDER_EVENTS
    schema = (
        "CREATE TABLE IF NOT EXISTS {t} ("
        "order_id TEXT PRIMARY KEY, owner TEXT NOT NULL, status TEXT NOT NULL, "
        "version INTEGER NOT NULL, total TEXT NOT NULL, currency TEXT NOT NULL, "
        "supplier_order_id TEXT, supplier_status TEXT, failure_reason TEXT, flags TEXT, "
        "key_count INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, "
        "paid_at TEXT, reserved_at TEXT, fulfilled_at TEXT, position BIGINT NOT NULL, "
        "state TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS {t}_status ON {t} (status, updated_at)",
        "CREATE INDEX IF NOT EXISTS {t}_updated ON {t} (updated_at)",
    )
    _encoder: ClassVar[msgspec.json.Encoder] = msgspec.json.Encoder()
    _decoder: ClassVar[msgspec.json.Decoder[Order]] = msgspec.json.Decoder(Order)

    def apply(self, tx: Tx, table: str, event: DomainEvent, position: int) -> Change | None:
        """Fold the event onto the stored order and write the row back; a new status is news
        for live subscribers."""
        rows = tx.execute(
            f"SELECT state, position FROM {table} WHERE order_id = %s",  # noqa: S608
            (str(event.originator_id),),
        )
        if rows and rows[0][1] >= position:
            return None  # seen already: replays are idempotent
        before = self._decoder.decode(rows[0][0]) if rows else None
        order = rules.apply(before, event)
        at = event.timestamp.isoformat()
        row = {
            "order_id": str(order.id),
            "owner": order.owner,
            "status": order.status.value,
            "version": order.version,
            "total": str(order.total),
            "currency": order.currency,
            "supplier_order_id": order.supplier_order_id,
            "supplier_status": order.supplier_status,
            "failure_reason": order.failure_reason,
            "flags": "; ".join(order.flags) or None,
            "key_count": len(order.keys),
            "created_at": order.placed_at.isoformat(),
            "updated_at": order.updated_at.isoformat(),
            "paid_at": at if isinstance(event, OrderPaid) else None,
            "reserved_at": at if isinstance(event, KeysReserved) else None,
            "fulfilled_at": at if isinstance(event, OrderFulfilled) else None,
            "position": position,
            "state": self._encoder.encode(order).decode(),
        }
        _upsert(tx, table, row, keep_first=("paid_at", "reserved_at", "fulfilled_at"))
        if before is not None and before.status is order.status:
            return None
        return {
            "order_id": str(order.id),
            "owner": order.owner,
            "status": order.status.value,
            "version": order.version,
            "at": at,
        }


def _upsert(tx: Tx, table: str, row: Mapping[str, object], keep_first: tuple[str, ...]) -> None:
    """Insert or replace the row; columns in ``keep_first`` keep their first non-null value."""
    updates = ", ".join(
        f"{c} = COALESCE({table}.{c}, excluded.{c})" if c in keep_first else f"{c} = excluded.{c}"
        for c in row
        if c != "order_id"
    )
    tx.execute(
        f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))}) "  # noqa: S608
        f"ON CONFLICT (order_id) DO UPDATE SET {updates}",
        tuple(row.values()),
    )
