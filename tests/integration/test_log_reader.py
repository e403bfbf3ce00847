"""One reader of the log per process: every consumer is fed from one read of each batch, a
failing consumer does not hold the others back, a consumer runs only under its lock, and an
event this version does not know stops the consumers that read its type, never skipped."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from adapters.batch_loop import BatchLoop
from adapters.eventstore import MsgspecMapper, RecorderEventStore, open_event_store, topics_of
from adapters.log_reader import LogReader
from adapters.views import HeldLock
from domain.event_types import TYPES, EventType, EventTypes
from domain.events import DomainEvent, OrderPaid, OrderPlaced
from tests.integration.test_log_follower import paid_order_events


class Recorder:
    """A consumer that keeps what it is given; it fails while ``failing`` is set."""

    def __init__(self, name: str, topics: Sequence[type[DomainEvent]] = ()) -> None:
        self.lock_name = name
        self.topics = topics_of(topics)
        self.position = 0
        self.seen: list[DomainEvent] = []
        self.failing = False
        self.resumed = 0

    def work(self) -> int:
        return 0

    def resume(self) -> None:
        self.resumed += 1

    def wants(self) -> int:
        return self.position

    def take(self, batch: Sequence[tuple[Any, DomainEvent]], upto: int) -> None:
        if self.failing:
            raise RuntimeError("this consumer fails")
        self.seen.extend(event for _notification, event in batch)
        self.position = upto


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RecorderEventStore]:
    opened = open_event_store(
        {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "es.db")}
    )
    yield opened
    opened.close()


def counting_reads(store: RecorderEventStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the log is read (one entry per ``notifications`` call)."""
    reads: list[int] = []
    original = store.notifications

    def notifications(*args: Any, **kwargs: Any) -> Any:
        reads.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(store, "notifications", notifications)
    return reads


def test_every_consumer_is_fed_from_one_read(
    store: RecorderEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    orders = [paid_order_events() for _ in range(3)]
    for events in orders:
        store.save(events)
    everything, placed, paid = (
        Recorder("all"),
        Recorder("placed", [OrderPlaced]),
        Recorder("paid", [OrderPaid]),
    )
    reads = counting_reads(store, monkeypatch)

    reader = LogReader(store, [everything, placed, paid])
    assert reader.run_once() == 0  # one short batch: nothing more to read at once

    assert len(reads) == 1
    assert len(everything.seen) == sum(len(events) for events in orders)
    assert [type(e) for e in placed.seen] == [OrderPlaced] * 3
    assert [type(e) for e in paid.seen] == [OrderPaid] * 3
    assert everything.position == placed.position == paid.position == store.head()


def test_a_full_batch_reads_on_from_the_slowest_consumer(store: RecorderEventStore) -> None:
    for _ in range(4):
        store.save(paid_order_events())
    first, second = Recorder("first"), Recorder("second", [OrderPaid])
    reader = LogReader(store, [first, second], batch_size=5)
    while reader.run_once():
        pass
    assert first.position == second.position == store.head()
    assert len(second.seen) == 4


def test_a_consumer_past_a_full_batch_is_not_moved_back(store: RecorderEventStore) -> None:
    for _ in range(4):
        store.save(paid_order_events())
    slow, ahead = Recorder("slow"), Recorder("ahead")
    ahead.position = store.head() - 1
    reader = LogReader(store, [slow, ahead], batch_size=5)
    reader.run_once()
    assert slow.position == 5
    assert ahead.position == store.head() - 1  # not fed the batch that ends before it
    while reader.run_once():
        pass
    assert slow.position == ahead.position == store.head()


def test_a_failing_consumer_keeps_its_place_and_holds_no_one_back(
    store: RecorderEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("adapters.log_reader.PAUSE_AFTER_FAILURE_S", 0.0)
    store.save(paid_order_events())
    healthy, failing = Recorder("healthy"), Recorder("failing")
    failing.failing = True
    reader = LogReader(store, [healthy, failing])

    reader.run_once()
    assert healthy.position == store.head()
    assert failing.position == 0

    failing.failing = False
    store.save(paid_order_events())
    reader.run_once()
    assert failing.position == healthy.position == store.head()
    assert len(failing.seen) == len(healthy.seen)


def test_a_consumer_runs_only_while_its_process_holds_its_lock(store: RecorderEventStore) -> None:
    store.save(paid_order_events())
    taken: set[str] = {"mine"}

    @contextmanager
    def lock(name: str) -> Iterator[HeldLock]:
        yield HeldLock(taken=name in taken)

    mine, elsewhere = Recorder("mine"), Recorder("held elsewhere")
    reader = LogReader(store, [mine, elsewhere], lock=lock)
    reader.run_once()
    assert mine.position == store.head()
    assert mine.resumed == 1  # told to read its position again when it took the lock
    assert elsewhere.seen == []
    assert elsewhere.resumed == 0
    reader.stop()


def newer_release_wrote(store: RecorderEventStore, stored_name: str) -> int:
    """An event as a newer release of the engine stores it; its position."""
    state = b'{"originator_id":"%s","originator_version":1,"timestamp":"2026-12-07T00:00:00Z"}'
    originator_id = uuid4()
    store.recorder.insert_events(
        [StoredEvent(originator_id, 1, stored_name, state % str(originator_id).encode())]
    )
    return store.head()


@pytest.mark.parametrize(
    ("stored_name", "stopped"),
    [
        ("domain.events:OrderShipped", {"all"}),  # a type of a newer release
        ("domain.events:OrderPaid@2", {"all", "paid"}),  # a newer version of a known type
    ],
)
def test_an_unknown_event_stops_the_consumers_that_read_its_type_before_it(
    store: RecorderEventStore,
    caplog: pytest.LogCaptureFixture,
    stored_name: str,
    stopped: set[str],
) -> None:
    """Those that read it are fed up to the event before it and let go of their locks (one
    WARNING line each), for a process that knows it; the others read on past it."""
    store.save(paid_order_events())
    position = newer_release_wrote(store, stored_name)
    store.save(paid_order_events())
    released: list[str] = []

    @contextmanager
    def lock(name: str) -> Iterator[HeldLock]:
        yield HeldLock(taken=True)
        released.append(name)

    consumers = [Recorder("all"), Recorder("placed", [OrderPlaced]), Recorder("paid", [OrderPaid])]
    reader = LogReader(store, consumers, lock=lock)
    with caplog.at_level(logging.WARNING, logger="adapters.log_reader"):
        for _ in range(3):
            reader.run_once()
    at = {consumer.lock_name: consumer.position for consumer in consumers}
    assert {name for name, where in at.items() if where == position - 1} == stopped
    assert {name for name, where in at.items() if where == store.head()} == {
        "all",
        "placed",
        "paid",
    } - stopped
    assert sorted(released) == sorted(stopped)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(stopped)
    assert all(stored_name in w and f"position {position}" in w for w in warnings)
    assert not any(r.exc_info for r in caplog.records)
    reader.stop()


class OrderShipped(DomainEvent, frozen=True, kw_only=True):
    """An event type of a newer release."""


def test_a_consumer_stopped_at_an_unknown_event_resumes_where_it_is_known(
    store: RecorderEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped before the event, the consumer takes its lock again when its stand-by ends;
    in a process that knows the type (here: the registry extended, as a newer release's),
    it reads on from where it stopped, the event included."""
    monkeypatch.setattr("adapters.log_reader.STAND_BY_S", 0.0)
    store.save(paid_order_events())
    position = newer_release_wrote(store, "domain.events:OrderShipped")
    store.save(paid_order_events())
    everything = Recorder("all")
    reader = LogReader(store, [everything])
    reader.run_once()
    assert everything.position == position - 1
    newer = EventTypes([*TYPES, EventType("domain.events:OrderShipped", OrderShipped)])
    monkeypatch.setattr("adapters.eventstore.EVENT_TYPES", newer)
    store.mapper = MsgspecMapper()
    while reader.run_once():
        pass
    assert everything.position == store.head()
    assert [type(e) for e in everything.seen].count(OrderShipped) == 1
    reader.stop()


def test_a_stream_of_wake_ups_makes_paced_passes_not_one_each() -> None:
    """Woken without pause, the loop starts a pass at most every ``min_interval``: the
    wake-ups coalesce, and the work of each pass grows instead."""
    passes: list[float] = []

    def step() -> int:
        passes.append(time.monotonic())
        return 0

    loop = BatchLoop("paced", step, batch_size=1, poll_interval=5.0, min_interval=0.05)
    loop.start()
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        loop.wake()
        time.sleep(0.001)
    loop.stop()
    assert 2 <= len(passes) <= 12  # some 400 wake-ups, one pass per 50 ms at most
    gaps = [later - earlier for earlier, later in itertools.pairwise(passes)]
    assert min(gaps) >= 0.045
