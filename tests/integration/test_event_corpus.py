"""Stored events are forever: a frozen corpus of events as earlier releases stored them, byte
for byte (``tests/corpus/*.jsonl``, captured by ``scripts/capture_corpus.py``), must keep loading
on every backend and fold to the same orders and products (``*.folds.json``, written once when a
corpus is added: ``python -m tests.integration.test_event_corpus``).

A change that breaks this breaks the shop's history: give the event a new version and an
upcaster in ``domain.event_types`` instead (``OrderPlaced`` 1 → 2 is the example)."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import pytest
from eventsourcing.persistence import StoredEvent

from adapters.eventstore import MsgspecMapper, RecorderEventStore
from domain import catalog
from domain import order as orders
from domain.event_types import EVENT_TYPES, TYPES, type_name
from domain.events import DomainEvent, OrderPlaced, ProductImported

CORPUS = Path(__file__).parent.parent / "corpus"
CORPORA = sorted(CORPUS.glob("*.jsonl"))


def stored(corpus: Path) -> list[StoredEvent]:
    """A corpus's events as the store hands them back."""
    lines = [json.loads(line) for line in corpus.read_text().splitlines()]
    return [
        StoredEvent(
            originator_id=UUID(line["originator_id"]),
            originator_version=line["originator_version"],
            topic=line["topic"],
            state=line["state"].encode(),
        )
        for line in lines
    ]


def folds(events: list[DomainEvent]) -> dict[str, Any]:
    """The state of every order and product of the corpus, as JSON-ready values."""
    streams: dict[UUID, list[DomainEvent]] = defaultdict(list)
    for event in events:
        streams[event.originator_id].append(event)
    states: dict[str, Any] = {}
    for originator_id, stream in streams.items():
        if isinstance(stream[0], OrderPlaced):
            states[str(originator_id)] = _plain(orders.fold(stream))
        elif isinstance(stream[0], ProductImported):
            states[str(originator_id)] = _plain(catalog.fold_product(stream))
    return states


def _plain(state: object) -> Any:
    """A folded state as JSON values (lists, not tuples)."""
    return json.loads(msgspec.json.encode(state))


def test_the_corpora_hold_every_event_type_at_every_version() -> None:
    """Every event type the engine has, at each of its versions, is in some corpus: a new type
    or version is captured (``scripts/capture_corpus.py``) in the change that adds it."""
    names = {event.topic for corpus in CORPORA for event in stored(corpus)}
    every = {kind.stored_name(v) for kind in TYPES for v in range(1, kind.version + 1)}
    assert sorted(every - names) == []


@pytest.mark.parametrize("corpus", CORPORA, ids=lambda path: path.stem)
def test_every_stored_event_decodes_into_its_type(corpus: Path) -> None:
    mapper = MsgspecMapper()
    for event in stored(corpus):
        decoded = mapper.to_domain_event(event)
        kind, _ = EVENT_TYPES.resolve(event.topic)
        assert isinstance(decoded, kind.cls)
        assert type(decoded).__name__ == type_name(event.topic)
        assert (decoded.originator_id, decoded.originator_version) == (
            event.originator_id,
            event.originator_version,
        )


@pytest.mark.parametrize("corpus", CORPORA, ids=lambda path: path.stem)
def test_stored_corpus_loads_and_folds_to_the_same_states(
    corpus: Path, store: RecorderEventStore
) -> None:
    """Inserted as they were stored, the events load back through the store and fold to the
    orders and products recorded when the corpus was added (every field recorded then must
    still be there, with the same value; fields added since are not compared)."""
    events = stored(corpus)
    store.recorder.insert_events(events)
    ids = dict.fromkeys(UUID(str(e.originator_id)) for e in events)
    loaded = [event for originator_id in ids for event in store.load(originator_id)]
    assert len(loaded) == len(events)
    expected = json.loads(corpus.with_suffix(".folds.json").read_text())
    found = folds(loaded)
    assert found.keys() == expected.keys()
    for originator_id, state in expected.items():
        assert _subset(state, found[originator_id]), originator_id


def test_order_lines_of_version_1_are_upcast() -> None:
    """``OrderPlaced`` version 1 lines stored ``cost``: it is read as ``priced_cost``, and the
    ``name`` they did not record is ``None``."""
    mapper = MsgspecMapper()
    lifted = 0
    for corpus in CORPORA:
        for event in stored(corpus):
            if event.topic != "domain.events:OrderPlaced":
                continue
            raw = json.loads(event.state)
            placed = mapper.to_domain_event(event)
            assert isinstance(placed, OrderPlaced)
            for line, item in zip(raw["items"], placed.items, strict=True):
                assert "priced_cost" not in line
                assert str(item.priced_cost) == str(line.get("cost"))
                assert item.name is None
                lifted += 1
    assert lifted > 0


def _subset(expected: Any, found: Any) -> bool:
    """Whether ``found`` has every field of ``expected``, recursively, with its value."""
    if isinstance(expected, dict):
        return isinstance(found, dict) and all(
            key in found and _subset(value, found[key]) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(found, list)
            and len(found) == len(expected)
            and all(_subset(e, f) for e, f in zip(expected, found, strict=True))
        )
    return bool(expected == found)


def write_missing_folds() -> None:
    """Record the folds of every corpus that has none yet (never rewrite one)."""
    mapper = MsgspecMapper()
    for corpus in CORPORA:
        target = corpus.with_suffix(".folds.json")
        if not target.exists():
            states = folds([mapper.to_domain_event(e) for e in stored(corpus)])
            target.write_text(json.dumps(states, indent=1, sort_keys=True) + "\n")
            sys.stdout.write(f"wrote {target}\n")


if __name__ == "__main__":
    write_missing_folds()
