"""The catalog tells readiness whether an import has ever finished, cheaply: one store lookup
until it has, none after."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from adapters.eventstore import open_event_store
from application.catalog import Catalog
from application.ports import ProductPage
from domain.events import DomainEvent
from tests.fakes import FixedClock


class EmptyKinguin:
    """A supplier whose catalog is one empty page (enough for a sync to finish)."""

    def products(self, **_query: object) -> ProductPage:
        """An empty page, whatever is asked."""
        return ProductPage(products=[], total=0)


class CountingStore:
    """The real in-memory store, counting the lookups of an aggregate's newest event."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.latest_calls = 0

    def latest(self, aggregate_id: UUID) -> DomainEvent | None:
        self.latest_calls += 1
        found: DomainEvent | None = self._store.latest(aggregate_id)
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_imported_turns_true_once_a_sync_has_finished_and_is_remembered() -> None:
    """False before the first sync (each ask one lookup), true after it, in this process or
    another one on the same store, and never asked of the store again."""
    store = open_event_store({"PERSISTENCE_MODULE": "eventsourcing.popo"})
    counting = CountingStore(store)
    clock = FixedClock(datetime(2026, 12, 6, tzinfo=UTC))
    catalog = Catalog(counting, EmptyKinguin(), clock, Decimal(2))  # type: ignore[arg-type]
    other_process = Catalog(counting, EmptyKinguin(), clock, Decimal(2))  # type: ignore[arg-type]
    assert [catalog.imported(), catalog.imported()] == [False, False]
    assert counting.latest_calls == 2
    catalog.sync()
    assert other_process.imported()
    counting.latest_calls = 0
    assert all(other_process.imported() for _ in range(100))
    assert counting.latest_calls == 0
