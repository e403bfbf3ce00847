"""Tamper evidence: signed checkpoints of the log's Merkle tree, per-order evidence bundles,
consistency proofs, and the audit of the whole log against its tree (``bitloot verify --log``).

The tree is kept off the append path by its follower (``projections.merkle``); this module only
reads it. A bundle proves each of an order's events, as stored, into one signed checkpoint; it
is checked with ``domain.evidence`` alone (``bitloot evidence verify``).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

from application.errors import TreeBehind
from application.ports import (
    Checkpoint,
    CheckpointLog,
    Clock,
    EventRecords,
    LogTree,
    Signer,
    StoredRecord,
    TreeLeaf,
)
from domain.errors import OrderNotFound, TreeTooSmall
from domain.event_types import type_name
from domain.evidence import (
    BUNDLE_FORMAT,
    checkpoint_message,
    entry,
    key_id,
    leaf_hash,
    verify_checkpoint,
)
from domain.merkle import (
    CompactRange,
    consistency_ranges,
    hashes_of,
    inclusion_ranges,
    nodes_of,
    range_hash,
)

TREE_WAIT_S = 3.0  # how long a bundle waits for the tree to reach the order's newest event
TREE_POLL_S = 0.05
PAGE = 1000


class Evidence:
    """Checkpoints, bundles and proofs over the log's tree."""

    def __init__(
        self,
        records: EventRecords,
        tree: LogTree,
        checkpoints: CheckpointLog,
        signer: Signer,
        clock: Clock,
    ) -> None:
        self._records = records
        self._tree = tree
        self._checkpoints = checkpoints
        self._signer = signer
        self._key_id = key_id(signer.public_key)
        self._clock = clock
        self._signing = threading.Lock()

    # -- checkpoints -----------------------------------------------------------------------

    def public_key(self) -> dict[str, str]:
        """What ``GET /audit/public-key`` answers, and what ``evidence verify`` reads."""
        raw = self._signer.public_key
        return {
            "algorithm": "Ed25519",
            "public_key": base64.b64encode(raw).decode(),
            "key_id": self._key_id,
        }

    def checkpoint(self) -> Checkpoint | None:
        """Sign the tree as it stands, unless the newest checkpoint already has its size and
        this engine's key (then that one); None while the tree is empty."""
        with self._signing:
            size = self._tree.size()
            latest = self._checkpoints.latest()
            if size == 0 or (latest is not None and self._signs(latest, size, size)):
                return latest
            root = range_hash(0, size, self._tree.nodes(nodes_of([(0, size)]))).hex()
            timestamp = self._clock.now().isoformat()
            signature = self._signer.sign(checkpoint_message(size, root, timestamp))
            return self._checkpoints.add(
                Checkpoint(
                    tree_size=size,
                    root_hash=root,
                    timestamp=timestamp,
                    signature=base64.b64encode(signature).decode(),
                    key_id=self._key_id,
                )
            )

    def checkpoint_step(self) -> int:
        """One round of the periodic checkpointer: 1 when it signed a new one."""
        before = self._checkpoints.latest()
        after = self.checkpoint()
        return int(after is not None and after != before)

    def latest(self) -> Checkpoint | None:
        """The newest checkpoint."""
        return self._checkpoints.latest()

    def checkpoints(self, after: int, limit: int) -> list[Checkpoint]:
        """A page of checkpoints, oldest first."""
        return self._checkpoints.page(after, limit)

    # -- proofs ----------------------------------------------------------------------------

    def bundle(self, order_id: UUID) -> dict[str, Any]:
        """Every event of the order as a leaf, with its inclusion proof into one signed
        checkpoint (the newest, or a new one when the newest predates the order's last
        event). Raises ``TreeBehind`` when the tree has not reached that event in time."""
        records, leaves = self._proven_records(order_id)
        checkpoint = self._covering(max(leaf.index for leaf in leaves))
        size = checkpoint.tree_size
        ranges = {leaf.index: inclusion_ranges(leaf.index, size) for leaf in leaves}
        nodes = self._tree.nodes(nodes_of(r for rs in ranges.values() for r in rs))
        return {
            "format": BUNDLE_FORMAT,
            "order_id": str(order_id),
            "checkpoint": checkpoint_view(checkpoint),
            "leaves": [
                {
                    "index": leaf.index,
                    "version": record.version,
                    "topic": record.topic,
                    "type": type_name(record.topic),
                    "state": base64.b64encode(record.state).decode(),
                    "leaf_hash": leaf.hash.hex(),
                    "inclusion_proof": [h.hex() for h in hashes_of(ranges[leaf.index], nodes)],
                }
                for record, leaf in zip(records, leaves, strict=True)
            ],
        }

    def consistency(self, first: int, second: int) -> dict[str, Any]:
        """The proof that the tree of ``second`` leaves extends the tree of ``first``, with
        both roots as this tree has them."""
        size = self._tree.size()
        if second > size:
            raise TreeTooSmall(f"the tree has {size} leaves, fewer than {second}")
        ranges = consistency_ranges(first, second)
        nodes = self._tree.nodes(nodes_of([*ranges, (0, first), (0, second)]))
        return {
            "first": first,
            "second": second,
            "first_root": range_hash(0, first, nodes).hex(),
            "second_root": range_hash(0, second, nodes).hex(),
            "proof": [h.hex() for h in hashes_of(ranges, nodes)],
        }

    def _proven_records(self, order_id: UUID) -> tuple[list[StoredRecord], list[TreeLeaf]]:
        """The order's events as stored, each with the tree's leaf of its version, once the
        tree has all of them (the leaf hash is the tree's: an event edited since it was
        recorded no longer hashes to it, which the bundle's verifier reports)."""
        records = self._records.records(order_id)
        if not records:
            raise OrderNotFound(str(order_id))
        deadline = time.monotonic() + TREE_WAIT_S
        while True:
            by_version = {leaf.version: leaf for leaf in self._tree.leaves_of(order_id)}
            missing = [r.version for r in records if r.version not in by_version]
            if not missing:
                return records, [by_version[r.version] for r in records]
            if time.monotonic() >= deadline:
                raise TreeBehind(
                    f"the log's tree has not reached version {missing[0]} of the order yet; "
                    "try again in a moment"
                )
            time.sleep(TREE_POLL_S)

    def _signs(self, checkpoint: Checkpoint, least: int, most: int) -> bool:
        """Whether a checkpoint is of a size from ``least`` to ``most`` and signed with this
        engine's key (after a key change, bundles carry checkpoints the published key
        verifies)."""
        mine = checkpoint.key_id == self._key_id
        return mine and least <= checkpoint.tree_size <= most

    def _covering(self, index: int) -> Checkpoint:
        latest = self._checkpoints.latest()
        if latest is not None and self._signs(latest, index + 1, self._tree.size()):
            return latest
        signed = self.checkpoint()
        if signed is None or signed.tree_size <= index:  # pragma: no cover - the leaf exists
            raise TreeBehind("the log's tree does not reach this order yet")
        return signed

    # -- the audit of the log --------------------------------------------------------------

    def audit_log(self, report: Callable[[str], None]) -> int:
        """Recompute every leaf from the store and compare it with the tree, then check every
        checkpoint's signature and root against both; report each difference (by position
        and aggregate) and return how many there were."""
        checkpoints = list(self._all_checkpoints())
        audit = _LogAudit({c.tree_size for c in checkpoints}, report)
        for record, leaf in _merged(self._log(), self._leaves()):
            audit.compare(record, leaf)
        audit.finish_leaves()
        for checkpoint in checkpoints:
            audit.check(checkpoint, self._tree, self._signer.public_key)
        if audit.pending:
            report(f"note: the tree has not reached the newest {audit.pending} events yet")
        if audit.other_keys:
            report(
                f"note: {audit.other_keys} checkpoint(s) were signed with an earlier key: their "
                "roots were checked, their signatures need that key's public half"
            )
        return audit.findings

    def _log(self) -> Iterator[StoredRecord]:
        position = 0
        while page := self._records.log_records(position, PAGE):
            yield from page
            position = page[-1].position

    def _leaves(self) -> Iterator[TreeLeaf]:
        index = -1
        while page := self._tree.leaves(index, PAGE):
            yield from page
            index = page[-1].index

    def _all_checkpoints(self) -> Iterator[Checkpoint]:
        after = 0
        while page := self._checkpoints.page(after, PAGE):
            yield from page
            after = page[-1].id


def checkpoint_view(checkpoint: Checkpoint) -> dict[str, Any]:
    """A checkpoint as the routes and bundles show it."""
    return {
        "tree_size": checkpoint.tree_size,
        "root_hash": checkpoint.root_hash,
        "timestamp": checkpoint.timestamp,
        "signature": checkpoint.signature,
        "key_id": checkpoint.key_id,
    }


def _merged(
    records: Iterator[StoredRecord], leaves: Iterator[TreeLeaf]
) -> Iterator[tuple[StoredRecord | None, TreeLeaf | None]]:
    """The store's events and the tree's leaves side by side, matched by log position: a
    record without a leaf, or a leaf without a record, comes alone."""
    record, leaf = next(records, None), next(leaves, None)
    while record is not None or leaf is not None:
        if leaf is None or (record is not None and record.position < leaf.position):
            yield record, None
            record = next(records, None)
        elif record is None or leaf.position < record.position:
            yield None, leaf
            leaf = next(leaves, None)
        else:
            yield record, leaf
            record, leaf = next(records, None), next(leaves, None)


class _LogAudit:
    """The running comparison behind ``Evidence.audit_log``."""

    def __init__(self, signed_sizes: set[int], report: Callable[[str], None]) -> None:
        self._report = report
        self.findings = 0
        self.pending = 0  # events after the tree's last leaf: not reached yet
        self.other_keys = 0  # checkpoints signed before a key change
        self._store_tree = CompactRange()  # the tree the store's events make now
        self._signed_sizes = signed_sizes
        self._store_roots: dict[int, bytes] = {}  # its root at each size a checkpoint signed
        self._edited: list[tuple[TreeLeaf, StoredRecord, bytes]] = []
        self._unmatched: list[StoredRecord] = []
        self._last_leaf = 0  # the log position of the newest leaf seen
        self._differences: list[tuple[int, str]] = []  # (log position, line), reported sorted

    def compare(self, record: StoredRecord | None, leaf: TreeLeaf | None) -> None:
        """One position of the log against one leaf."""
        if leaf is not None:
            self._last_leaf = leaf.position
        if record is None:
            if leaf is not None:
                self._differences.append((leaf.position, f"{_where(leaf)}: deleted from the store"))
            return
        digest = leaf_hash(
            entry(record.topic, str(record.originator_id), record.version, record.state)
        )
        self._store_tree.append(digest)
        if self._store_tree.size in self._signed_sizes:
            self._store_roots[self._store_tree.size] = self._store_tree.root()
        if leaf is None:
            self._unmatched.append(record)
        elif digest != leaf.hash:
            self._edited.append((leaf, record, digest))

    def finish_leaves(self) -> None:
        """Report edits (naming events that moved) and inserted events; count the events the
        tree has not reached yet."""
        recorded = {leaf.hash: leaf for leaf, _, _ in self._edited}
        for leaf, record, digest in self._edited:
            source = recorded.get(digest)
            how = (
                f"reordered: it holds the event of leaf {source.index} ({_name(source)})"
                if source is not None
                else "edited: its bytes differ from what the tree recorded"
            )
            now = f"{record.originator_id} v{record.version}"
            self._differences.append(
                (leaf.position, f"{_where(leaf)}: {how} (the store has {now} there)")
            )
        for record in self._unmatched:
            if record.position < self._last_leaf:
                line = (
                    f"log position {record.position} ({record.originator_id} "
                    f"v{record.version}): inserted, the tree has no leaf for it"
                )
                self._differences.append((record.position, line))
            else:
                self.pending += 1
        for _, line in sorted(self._differences):
            self._find(line)

    def check(self, checkpoint: Checkpoint, tree: LogTree, public_key: bytes) -> None:
        """One checkpoint: its signature, and its root against the tree and the store."""
        what = f"checkpoint {checkpoint.id} (size {checkpoint.tree_size})"
        if checkpoint.key_id != key_id(public_key):
            self.other_keys += 1
        elif not verify_checkpoint(checkpoint_view(checkpoint), public_key):
            self._find(f"{what}: the signature does not hold for the engine's key")
        size = checkpoint.tree_size
        try:
            tree_root = range_hash(0, size, tree.nodes(nodes_of([(0, size)]))).hex()
        except KeyError:
            self._find(f"{what}: the tree has fewer leaves than this checkpoint signed")
        else:
            if tree_root != checkpoint.root_hash:
                self._find(f"{what}: the tree's root at this size is not the signed one")
        store_root = self._store_roots.get(size)
        if store_root is None or store_root.hex() != checkpoint.root_hash:
            self._find(f"{what}: the store's first {size} events do not hash to the signed root")

    def _find(self, line: str) -> None:
        self.findings += 1
        self._report(line)


def _where(leaf: TreeLeaf) -> str:
    return f"leaf {leaf.index} (log position {leaf.position}, {_name(leaf)})"


def _name(leaf: TreeLeaf) -> str:
    return f"{leaf.originator_id} v{leaf.version}"
