"""Hand-written fakes of the application's ports, for fast tests of pure logic."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

import msgspec

from application.ports import Checkpoint, StoredRecord, TreeLeaf
from domain.evidence import entry, leaf_hash
from domain.merkle import CompactRange


class RecordingDispatcher:
    """A dispatcher that remembers what it was asked to do, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, UUID | str]] = []

    def reserve(self, order_id: UUID, delay_s: float = 0.0) -> None:
        self.sent.append(("reserve" if delay_s == 0 else f"reserve after {delay_s:g} s", order_id))

    def deliver(self, order_id: UUID, delay_s: float = 0.0) -> None:
        self.sent.append(("deliver" if delay_s == 0 else f"deliver after {delay_s:g} s", order_id))

    def notify(self, order_id: UUID) -> None:
        self.sent.append(("notify", order_id))

    def refresh_product(self, product_id: str) -> None:
        self.sent.append(("refresh_product", product_id))


class MemoryLog:
    """A log of stored records with its Merkle tree and checkpoints, in memory: the ports
    ``EventRecords``, ``LogTree`` and ``CheckpointLog`` at once (the tree is kept as the
    follower keeps it, with ``domain.merkle.CompactRange``)."""

    def __init__(self) -> None:
        self.stored: list[StoredRecord] = []
        self.tree_leaves: list[TreeLeaf] = []
        self.tree_nodes: dict[tuple[int, int], bytes] = {}
        self.signed: list[Checkpoint] = []
        self._range = CompactRange()

    def append(self, originator_id: UUID, topic: str, state: bytes) -> StoredRecord:
        """Record one event and add it to the tree."""
        version = 1 + sum(r.originator_id == originator_id for r in self.stored)
        record = StoredRecord(
            topic=topic,
            originator_id=originator_id,
            version=version,
            state=state,
            position=len(self.stored) + 1,
        )
        self.stored.append(record)
        digest = leaf_hash(entry(topic, str(originator_id), version, state))
        index = self._range.size
        self.tree_nodes.update(self._range.append(digest))
        self.tree_leaves.append(
            TreeLeaf(
                index=index,
                position=record.position,
                originator_id=originator_id,
                version=version,
                hash=digest,
            )
        )
        return record

    # EventRecords
    def records(self, aggregate_id: UUID) -> list[StoredRecord]:
        return [r for r in self.stored if r.originator_id == aggregate_id]

    def log_records(self, after: int, limit: int) -> list[StoredRecord]:
        return [r for r in self.stored if r.position > after][:limit]

    # LogTree
    def size(self) -> int:
        return len(self.tree_leaves)

    def nodes(self, wanted: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        return {key: self.tree_nodes[key] for key in wanted if key in self.tree_nodes}

    def leaves_of(self, aggregate_id: UUID) -> list[TreeLeaf]:
        return [leaf for leaf in self.tree_leaves if leaf.originator_id == aggregate_id]

    def leaves(self, after: int, limit: int) -> list[TreeLeaf]:
        return self.tree_leaves[after + 1 : after + 1 + limit]

    # CheckpointLog
    def add(self, checkpoint: Checkpoint) -> Checkpoint:
        kept = msgspec.structs.replace(checkpoint, id=len(self.signed) + 1)
        self.signed.append(kept)
        return kept

    def latest(self) -> Checkpoint | None:
        return self.signed[-1] if self.signed else None

    def page(self, after: int, limit: int) -> list[Checkpoint]:
        return [c for c in self.signed if c.id > after][:limit]


class FixedClock:
    """A clock that always answers the same instant."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now
