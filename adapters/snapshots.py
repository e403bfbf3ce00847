"""Snapshots of products: a product's stream gains an event at every change Kinguin reports, so
loading it would slow down as it grows. Every ``SNAPSHOT_EVERY`` events (``application.catalog``)
the folded product is kept in the ``snapshots`` table beside the events (the library's aggregate
recorder), and a load reads the newest snapshot and the events after it.

A snapshot is only as good as the shape and the fold that made it: each is kept under a stream
of its own, named after ``Product``'s JSON schema and ``PRODUCT_FOLD_VERSION``. An engine whose
product has another shape, or folds differently, finds no snapshot of its own, loads the whole
stream, and starts a new series; old ones are never read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from uuid import UUID, uuid5

import msgspec
from eventsourcing.persistence import AggregateRecorder, IntegrityError, StoredEvent

from domain.catalog import PRODUCT_FOLD_VERSION, Product


def snapshot_kind() -> str:
    """The name of this engine's product snapshots: its fold version and product shape."""
    schema = json.dumps(msgspec.json.schema(Product), sort_keys=True).encode()
    return f"snapshot:Product:{PRODUCT_FOLD_VERSION}:{hashlib.sha256(schema).hexdigest()[:16]}"


class ProductSnapshots:
    """Product snapshots in the store's ``snapshots`` table."""

    def __init__(self, recorder: AggregateRecorder) -> None:
        self._recorder = recorder
        self._kind = snapshot_kind()
        self._decoder = msgspec.json.Decoder(Product)
        self._encoder = msgspec.json.Encoder()

    def latest(self, aggregate_id: UUID) -> Product | None:
        """The newest snapshot of this engine's kind, if any."""
        found = self._recorder.select_events(self._series(aggregate_id), desc=True, limit=1)
        return self._decoder.decode(found[0].state) if found else None

    def save(self, product: Product) -> None:
        """Keep one at the product's version; another process keeping the same is no fault."""
        snapshot = StoredEvent(
            originator_id=self._series(product.id),
            originator_version=product.version,
            topic=self._kind,
            state=self._encoder.encode(product),
        )
        with contextlib.suppress(IntegrityError):  # the same one, kept by another load just now
            self._recorder.insert_events([snapshot])

    def _series(self, aggregate_id: UUID) -> UUID:
        return uuid5(aggregate_id, self._kind)
