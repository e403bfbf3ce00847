"""The registry of stored event types: every event class named once, names and versions read
back, and what this version does not know refused by name."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from adapters.eventstore import MsgspecMapper
from domain.event_types import EVENT_TYPES, TYPES, EventTypes, UnknownEventType, type_name
from domain.events import ALL_EVENTS, DomainEvent, KeysReserved, OrderPaid, OrderPlaced


def test_every_event_class_is_registered_once() -> None:
    assert sorted(kind.cls.__name__ for kind in TYPES) == sorted(c.__name__ for c in ALL_EVENTS)
    assert len({kind.name for kind in TYPES}) == len(TYPES)


def test_names_and_versions() -> None:
    """Version 1 under the bare name; a later version under ``<name>@<n>``, and a log filter
    asks for every version's name."""
    assert EVENT_TYPES.stored_name(KeysReserved) == "domain.events:KeysReserved"
    assert EVENT_TYPES.stored_name(OrderPlaced) == "domain.events:OrderPlaced@2"
    assert EVENT_TYPES.stored_names(OrderPlaced) == (
        "domain.events:OrderPlaced",
        "domain.events:OrderPlaced@2",
    )
    kind, version = EVENT_TYPES.resolve("domain.events:OrderPlaced")
    assert (kind.cls, version) == (OrderPlaced, 1)
    assert type_name("domain.events:OrderPlaced@2") == "OrderPlaced"


@pytest.mark.parametrize(
    "name",
    [
        "domain.events:OrderShipped",  # a type of a newer release
        "domain.events:OrderPlaced@3",  # a version of a newer release
        "domain.events:OrderPlaced@x",
        "domain.events:OrderPlaced@0",
        "orders:OrderPlaced",
    ],
)
def test_what_this_version_does_not_know_is_refused_by_name(name: str) -> None:
    with pytest.raises(UnknownEventType) as refused:
        EVENT_TYPES.resolve(name)
    assert refused.value.stored_name == name


def test_a_name_or_class_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        EventTypes([*TYPES, TYPES[0]])


class Paid(DomainEvent, frozen=True, kw_only=True):
    """``OrderPaid`` as if it had moved to this module under another name."""

    payment_id: str
    amount_received: Decimal | None = None


def test_a_class_moved_and_renamed_still_loads_and_stores_by_its_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Names are registered, not derived from where a class lives: with ``OrderPaid``'s name
    registered to a class of another module and name, its stored events load into that class,
    and new ones are stored under the same name."""
    paid = OrderPaid(
        originator_id=uuid4(), originator_version=5, timestamp=datetime.now(UTC), payment_id="p"
    )
    stored = MsgspecMapper().to_stored_event(paid)
    moved = [Paid if kind.cls is OrderPaid else kind.cls for kind in TYPES]
    registry = EventTypes([kind._replace(cls=cls) for kind, cls in zip(TYPES, moved, strict=True)])
    monkeypatch.setattr("adapters.eventstore.EVENT_TYPES", registry)
    mapper = MsgspecMapper()
    loaded = mapper.to_domain_event(stored)
    assert isinstance(loaded, Paid)
    assert (loaded.originator_id, loaded.payment_id) == (paid.originator_id, "p")
    assert mapper.to_stored_event(loaded).topic == stored.topic == "domain.events:OrderPaid"
