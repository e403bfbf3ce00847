"""The key-access audit: who read which order's keys, when, from where, and how."""

from __future__ import annotations

from adapters.views import Tx
from domain.events import DomainEvent, KeysRevealed
from projections.base import Change, Projection


class KeyAuditProjection(Projection):
    """One row per reveal or download of an order's keys."""

    name = "key_audit"
    topics = (KeysRevealed,)
    schema = (
        "CREATE TABLE IF NOT EXISTS {t} ("
        "order_id TEXT NOT NULL, version INTEGER NOT NULL, who TEXT NOT NULL, "
        "ip TEXT NOT NULL, user_agent TEXT NOT NULL, how TEXT NOT NULL, at TEXT NOT NULL, "
        "PRIMARY KEY (order_id, version))",
    )

    def apply(self, tx: Tx, table: str, event: DomainEvent, position: int) -> Change | None:  # noqa: ARG002
        """Insert the access (once)."""
        if not isinstance(event, KeysRevealed):
            return None
        tx.execute(
            f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s, %s, %s) "  # noqa: S608
            "ON CONFLICT (order_id, version) DO NOTHING",
            (
                str(event.originator_id), event.originator_version, event.who, event.ip,
                event.user_agent, event.how, event.timestamp.isoformat(),
            ),
        )  # fmt: skip
        return None
