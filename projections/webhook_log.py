"""The webhook log: every stored delivery, verified, deduplicated, with its outcome."""

from __future__ import annotations

import json

from adapters.views import Tx
from domain.events import DomainEvent, WebhookDeliveryRecorded
from projections.base import Change, Projection


class WebhookLogProjection(Projection):
    """One row per webhook delivery."""

    name = "webhook_log"
    topics = (WebhookDeliveryRecorded,)
    schema = (
        "CREATE TABLE IF NOT EXISTS {t} ("
        "delivery_id TEXT PRIMARY KEY, provider TEXT NOT NULL, natural_key TEXT NOT NULL, "
        "event_name TEXT NOT NULL, order_id TEXT, verified INTEGER NOT NULL, "
        "outcome TEXT NOT NULL, received_at TEXT NOT NULL, body TEXT NOT NULL, "
        "position BIGINT NOT NULL, headers TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS {t}_received ON {t} (received_at)",
        "CREATE INDEX IF NOT EXISTS {t}_order ON {t} (order_id)",
    )

    def apply(self, tx: Tx, table: str, event: DomainEvent, position: int) -> Change | None:
        """Insert the delivery (once)."""
        if not isinstance(event, WebhookDeliveryRecorded):
            return None
        tx.execute(
            f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "  # noqa: S608
            "ON CONFLICT (delivery_id) DO NOTHING",
            (
                str(event.originator_id), event.provider, event.natural_key, event.event_name,
                event.order_id, int(event.verified), event.outcome,
                event.timestamp.isoformat(), event.body, position, json.dumps(event.headers),
            ),
        )  # fmt: skip
        return None
