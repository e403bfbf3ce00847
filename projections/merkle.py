"""The log's Merkle tree (RFC 9162), kept by a follower like any projection: rebuilt from the
log on request, its lag shown with the others.

One table holds the complete subtrees, ``(level, idx) → hash`` (see ``domain.merkle``); a leaf
row (level 0) also names its event: log position, aggregate and version. Each batch reads the
tree's compact range (at most one node per level) and appends; nothing is ever updated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification

from adapters.views import Tx, ViewDatabase
from application.ports import TreeLeaf
from domain.events import DomainEvent
from domain.evidence import entry, leaf_hash
from domain.merkle import CompactRange, Node, parts
from projections.base import Change, Projection
from projections.state import query_live, read_live

NAME = "merkle_tree"
_LEAF_COLUMNS = "idx, notification_id, originator_id, version, hash"


class MerkleTreeProjection(Projection):
    """Appends every event of the log, as stored, to the tree."""

    name = NAME
    topics = ()  # every event
    schema = (
        "CREATE TABLE IF NOT EXISTS {t} ("
        "level INTEGER NOT NULL, idx BIGINT NOT NULL, hash BYTEA NOT NULL, "
        "notification_id BIGINT, originator_id TEXT, version INTEGER, "
        "PRIMARY KEY (level, idx))",
        "CREATE INDEX IF NOT EXISTS {t}_originator ON {t} (originator_id, version) WHERE level = 0",
    )

    def apply(self, tx: Tx, table: str, event: DomainEvent, position: int) -> Change | None:  # noqa: ARG002
        """Not used: the tree hashes the stored bytes, which ``apply_records`` is given."""
        raise TypeError("the log's tree is built from stored records (apply_records)")

    def apply_records(
        self, tx: Tx, table: str, batch: Sequence[tuple[Notification, DomainEvent]]
    ) -> list[Change]:
        """Append the batch's events that the tree does not have yet."""
        tree, last = _compact_range(tx, table)
        rows: list[tuple[Any, ...]] = []
        for record, _ in batch:
            if record.id <= last:
                continue
            for (level, idx), digest in tree.append(leaf_hash(_entry(record))):
                named = (record.id, str(record.originator_id), record.originator_version)
                rows.append((level, idx, digest, *(named if level == 0 else (None,) * 3)))
        tx.execute_many(
            f"INSERT INTO {table} (level, idx, hash, notification_id, originator_id, version) "  # noqa: S608
            "VALUES (%s, %s, %s, %s, %s, %s)",
            rows,
        )
        return []


def _entry(record: Notification) -> bytes:
    return entry(
        record.topic, str(record.originator_id), int(record.originator_version), bytes(record.state)
    )


def _compact_range(tx: Tx, table: str) -> tuple[CompactRange, int]:
    """The tree's compact range, and the log position of its last leaf (0 when empty)."""
    rows = tx.execute(
        f"SELECT idx, notification_id FROM {table} WHERE level = 0 ORDER BY idx DESC LIMIT 1"  # noqa: S608
    )
    if not rows:
        return CompactRange(), 0
    size, last = int(rows[0][0]) + 1, int(rows[0][1])
    return CompactRange.of(size, _nodes(tx, table, parts(0, size))), last


def _nodes(tx: Tx, table: str, wanted: Iterable[Node]) -> dict[Node, bytes]:
    keys = sorted(set(wanted))
    if not keys:
        return {}
    # one index lookup per node on both databases (SQLite scans the table for a row-value IN)
    wanted_nodes = " OR ".join(["(level = %s AND idx = %s)"] * len(keys))
    rows = tx.execute(
        f"SELECT level, idx, hash FROM {table} WHERE {wanted_nodes}",  # noqa: S608
        [value for key in keys for value in key],
    )
    return {(int(level), int(idx)): bytes(digest) for level, idx, digest in rows}


class TreeTable:
    """Reads of the tree for proofs and audits: the live generation's table, read again should
    a rebuild's swap retire it under the read (``projections.state.read_live``). Every
    generation is the same tree, cut at its own size, so reads that land on different ones agree."""

    def __init__(self, views: ViewDatabase) -> None:
        self._views = views

    def size(self) -> int:
        """How many leaves the tree has."""
        rows = self._query("SELECT MAX(idx) FROM {t} WHERE level = 0")
        return 0 if not rows or rows[0][0] is None else int(rows[0][0]) + 1

    def nodes(self, wanted: Iterable[Node]) -> dict[Node, bytes]:
        """The hashes of these complete subtrees (in one query per 200)."""
        keys = sorted(set(wanted))
        return read_live(self._views, NAME, lambda table: self._nodes_of(table, keys))

    def _nodes_of(self, table: str, keys: list[Node]) -> dict[Node, bytes]:
        found: dict[Node, bytes] = {}
        with self._views.transaction() as tx:  # the name is read before: one connection at a time
            for start in range(0, len(keys), 200):
                found |= _nodes(tx, table, keys[start : start + 200])
        return found

    def leaves_of(self, aggregate_id: UUID) -> list[TreeLeaf]:
        """The leaves of one aggregate's events, by version."""
        rows = self._query(
            f"SELECT {_LEAF_COLUMNS} FROM {{t}} "  # noqa: S608
            "WHERE level = 0 AND originator_id = %s ORDER BY version",
            (str(aggregate_id),),
        )
        return [_leaf(row) for row in rows]

    def leaves(self, after: int, limit: int) -> list[TreeLeaf]:
        """At most ``limit`` leaves from index ``after + 1`` on."""
        rows = self._query(
            f"SELECT {_LEAF_COLUMNS} FROM {{t}} "  # noqa: S608
            "WHERE level = 0 AND idx > %s ORDER BY idx LIMIT %s",
            (after, limit),
        )
        return [_leaf(row) for row in rows]

    def _query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One read of the live table, written with ``{t}`` for its name."""
        return query_live(self._views, NAME, statement, params)


def _leaf(row: tuple[Any, ...]) -> TreeLeaf:
    idx, position, originator, version, digest = row
    return TreeLeaf(
        index=int(idx),
        position=int(position),
        originator_id=UUID(originator),
        version=int(version),
        hash=bytes(digest),
    )
