"""The registry of stored event types: every event class named once, names and versions read
back, and what this version does not know refused by name."""

from __future__ import annotations

import pytest

from domain.event_types import EVENT_TYPES, TYPES, EventTypes, UnknownEventType, type_name
from domain.events import ALL_EVENTS, KeysReserved, OrderPlaced


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
