"""Product snapshots: a product many events long is loaded from its newest snapshot and the
events after it, to the same product as a fold of the whole stream; a snapshot of another shape
or fold is never used."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast
from uuid import UUID

import pytest

from adapters.eventstore import RecorderEventStore
from adapters.snapshots import ProductSnapshots
from application.catalog import SNAPSHOT_EVERY, Catalog
from domain import catalog
from domain.events import DomainEvent
from tests.fakes import FixedClock
from tests.unit.test_catalog import NOW, RULES, facts

PRODUCT_ID = "5c9b5f6b2539a4e8f172916a"


def grow(store: RecorderEventStore, changes: int, first_cost: int = 500) -> UUID:
    """Kinguin's cost of the product changes ``changes`` times: two events each."""
    aggregate_id = catalog.product_aggregate_id(PRODUCT_ID)
    for step in range(changes):
        product = catalog.fold_product(store.load(aggregate_id))
        cost = str(Decimal(first_cost + step) / 100)
        store.save(catalog.synced(product, facts(cost), RULES, NOW))
    return aggregate_id


def shop(store: RecorderEventStore) -> tuple[Catalog, list[int | None]]:
    """The catalog with snapshots, and the ``after_version`` of every load it makes."""
    loads: list[int | None] = []
    load = store.load

    def counted(aggregate_id: UUID, **versions: Any) -> list[DomainEvent]:
        loads.append(versions.get("after_version"))
        return load(aggregate_id, **versions)

    snapshots = ProductSnapshots(store.snapshot_recorder())
    counting = cast(Any, store)
    counting.load = counted
    return Catalog(counting, cast(Any, None), FixedClock(NOW), Decimal(2), snapshots), loads


def test_a_long_stream_loads_from_its_snapshot_to_the_same_product(
    store: RecorderEventStore,
) -> None:
    aggregate_id = grow(store, 130)  # 260 events: more than twice a snapshot's worth
    whole = catalog.fold_product(store.load(aggregate_id))
    assert whole is not None
    assert whole.version > SNAPSHOT_EVERY
    products, loads = shop(store)

    assert products.product(PRODUCT_ID) == whole  # the whole stream, then a snapshot kept
    assert products.product(PRODUCT_ID) == whole  # from the snapshot: nothing after it
    assert loads == [0, whole.version]

    grow(store, 10, first_cost=900)
    later = catalog.fold_product(store.load(aggregate_id))
    assert products.product(PRODUCT_ID) == later
    assert loads[-1] == whole.version  # 20 events after the snapshot: read, no new one yet


def test_a_snapshot_of_another_fold_is_never_used(
    store: RecorderEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    aggregate_id = grow(store, 60)
    whole = catalog.fold_product(store.load(aggregate_id))
    products, loads = shop(store)
    products.product(PRODUCT_ID)
    assert loads == [0]  # kept a snapshot at the end
    monkeypatch.setattr("adapters.snapshots.PRODUCT_FOLD_VERSION", 2)
    refolded, loads = shop(store)
    assert refolded.product(PRODUCT_ID) == whole
    assert loads == [0]  # the whole stream: the older fold's snapshot is not this engine's
