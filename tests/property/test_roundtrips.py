"""Every persisted type survives its encoding: events through the store's mapper, data keys
and sealed keys through the envelope format."""

from __future__ import annotations

import typing
from datetime import UTC, datetime
from decimal import Decimal
from types import UnionType
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters import crypto
from adapters.eventstore import MsgspecMapper
from domain.events import ALL_EVENTS, DomainEvent, LineItem, OrderPaid

_SCALARS: dict[Any, st.SearchStrategy[Any]] = {
    str: st.text(max_size=40),
    int: st.integers(min_value=-(2**53), max_value=2**53),
    bool: st.booleans(),
    UUID: st.uuids(),
    Decimal: st.decimals(
        allow_nan=False, allow_infinity=False, places=4, min_value=-(10**9), max_value=10**9
    ),
    datetime: st.datetimes(timezones=st.just(UTC)),
    type(None): st.none(),
}


def strategy_for(annotation: Any) -> st.SearchStrategy[Any]:
    """A strategy for a field type: scalars, unions, tuples, dicts and nested structs."""
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, UnionType):
        return st.one_of(*(strategy_for(arg) for arg in typing.get_args(annotation)))
    if origin is tuple:
        return st.lists(strategy_for(typing.get_args(annotation)[0]), max_size=3).map(tuple)
    if origin is dict:
        key, value = typing.get_args(annotation)
        return st.dictionaries(strategy_for(key), strategy_for(value), max_size=3)
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return structs(annotation)
    raise TypeError(f"no strategy for {annotation!r}")


def structs(cls: type[msgspec.Struct]) -> st.SearchStrategy[Any]:
    """A strategy building ``cls`` from strategies for each of its fields."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: strategy_for(hints[f.name]) for f in msgspec.structs.fields(cls)}
    return st.builds(cls, **fields)


@pytest.mark.parametrize("event_class", ALL_EVENTS, ids=lambda c: c.__name__)
def test_every_event_round_trips_through_the_mapper(event_class: type[DomainEvent]) -> None:
    """Encoding then decoding an event gives back an equal event of the same class."""
    mapper = MsgspecMapper()

    @given(structs(event_class))
    def round_trip(event: DomainEvent) -> None:
        stored = mapper.to_stored_event(event)
        assert stored.originator_id == event.originator_id
        assert stored.originator_version == event.originator_version
        assert mapper.to_domain_event(stored) == event

    round_trip()


@given(structs(LineItem))
def test_line_items_round_trip(item: LineItem) -> None:
    """Line items keep exact decimal prices."""
    assert msgspec.json.decode(msgspec.json.encode(item), type=LineItem) == item


@given(st.binary(max_size=512), st.text(max_size=30))
def test_sealed_keys_round_trip(plaintext: bytes, key_id: str) -> None:
    """A sealed key opens to its plaintext under the same data key and context."""
    data_key = crypto.new_data_key()
    context = f"bitloot-key:{uuid4()}:{key_id}".encode()
    assert (
        crypto.open_sealed(data_key, crypto.seal(data_key, plaintext, context), context)
        == plaintext
    )


@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=3, unique=True))
def test_wrapped_data_keys_round_trip_under_any_listed_master(masters: list[bytes]) -> None:
    """A data key wrapped under the first master key unwraps with the same list (rotation-ready)."""
    keys = crypto.MasterKeys(masters)
    data_key = crypto.new_data_key()
    wrapped = crypto.wrap(keys, data_key, b"ctx")
    assert crypto.unwrap(crypto.MasterKeys([*masters[1:], masters[0]]), wrapped, b"ctx") == data_key


def test_every_stored_event_gets_its_own_salt() -> None:
    """The same event stored twice gives different bytes (a fresh salt each time) that decode
    to the same event."""
    when = datetime(2026, 12, 6, tzinfo=UTC)
    event = OrderPaid(
        originator_id=UUID(int=7), originator_version=5, timestamp=when, payment_id="5077125051"
    )
    mapper = MsgspecMapper()
    first, second = mapper.to_stored_event(event), mapper.to_stored_event(event)
    assert first.state != second.state
    assert b'"_salt":' in first.state
    assert mapper.to_domain_event(first) == mapper.to_domain_event(second) == event
