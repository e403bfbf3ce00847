"""One reader of the event log per process: it reads each batch of new events once, decodes
each event once, and hands every consumer (the process manager, each projection) the events of
its topics that it has not seen yet; each consumer then writes its effects and its position.

Before, every consumer ran a loop of its own, and each commit woke all of them: six reads of the
head, six notification queries, six lock probes and six decodings of the same events. Now one
thread does the reading for all of them, woken by appends in this process and, on PostgreSQL,
by the recorder's ``NOTIFY``. Wake-ups coalesce: those that arrive during a pass make one more
pass, and under a stream of them a pass starts at most every ``MIN_INTERVAL_S``, so that the
batches grow rather than the passes (each costs every consumer a transaction) multiply; after a
quiet spell a wake-up is served at once.

Each consumer still runs in one process at a time across processes: it takes part only while
this process holds its lock (asked for again every ``STAND_BY_S`` while another process holds
it). A held lock is not probed with a round trip per batch: ``HeldLock.verify`` looks at the
lock's own connection, which a database restart or ``pg_terminate_backend`` closes.

A consumer whose step fails (one WARNING line for an outage) keeps its position; the others move
on, and the next batch starts again from the slowest consumer's position.

An event of a type this version of the engine does not know (a newer release wrote it during a
rolling deploy) is never skipped: every consumer is fed up to the event before it, and those
that read its type stop there, with one WARNING line, and let go of their locks for
``STAND_BY_S``, so that a process of the newer release can take them over; the others go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from adapters.batch_loop import PAUSE_AFTER_FAILURE_S, STAND_BY_S, BatchLoop, Held, Lock
from adapters.eventstore import RecorderEventStore, UnknownEventAt
from adapters.outages import log_failure
from domain.events import DomainEvent

log = logging.getLogger(__name__)

Batch = Sequence[tuple[Any, DomainEvent]]  # (notification, its event), in log order
MIN_INTERVAL_S = 0.01  # under load, passes at most this often: wake-ups coalesce into batches


class Consumer(Protocol):
    """What the reader feeds."""

    @property
    def lock_name(self) -> str:
        """The name of the lock it runs under (one process at a time)."""
        ...

    @property
    def topics(self) -> Sequence[str]:
        """The topics it reads (all of them when empty)."""
        ...

    def resume(self) -> None:
        """Its lock has just been taken: forget what it kept in memory of its position and
        state (another process may have moved them on)."""
        ...

    def work(self) -> int:
        """Work of its own, run before each batch while it holds its lock (a rebuild's batch):
        how many events that took (the reader goes on at once while it is not 0)."""
        ...

    def wants(self) -> int | None:
        """The position after which it needs events, or ``None`` when it takes none now (a
        projection stopped at a failing event)."""
        ...

    def take(self, batch: Batch, upto: int) -> None:
        """Apply ``batch`` (its topics' events after its position) and move its position to
        ``upto``: every event up to there has been seen."""
        ...


class LogReader:
    """Feeds its consumers from one read of the log per batch, in one background thread."""

    def __init__(
        self,
        store: RecorderEventStore,
        consumers: Sequence[Consumer],
        *,
        lock: Lock | None = None,
        batch_size: int = 500,
        poll_interval: float = 0.25,
        min_interval: float = MIN_INTERVAL_S,
    ) -> None:
        self._store = store
        self._turns = [_Turn(consumer, lock) for consumer in consumers]
        self._batch_size = batch_size
        self._loop = BatchLoop(
            "log-reader",
            self.run_once,
            batch_size=1,
            poll_interval=poll_interval,
            min_interval=min_interval,
            finish=self._release_all,
        )
        store.on_append(self._loop.wake)

    def wake(self) -> None:
        """Read the log now rather than at the next poll (many wake-ups make one read)."""
        self._loop.wake()

    def run_once(self) -> int:
        """Feed one batch to every consumer that is behind; return 1 while there is more to
        read at once (a full batch read, every consumer fed), else 0."""
        busy = False
        wanted: list[tuple[_Turn, int]] = []
        for turn in self._turns:
            position, worked = turn.wants()
            busy = busy or worked
            if position is not None:
                wanted.append((turn, position))
        return 1 if self._feed(wanted) or busy else 0

    def _feed(self, wanted: Sequence[tuple[_Turn, int]]) -> bool:
        """One read for every consumer behind the head; whether there is more to read at once."""
        if not wanted:
            return False
        head = self._store.head()
        behind = [(turn, position) for turn, position in wanted if position < head]
        if not behind:
            return False
        start = min(position for _turn, position in behind)
        try:
            batch = self._store.notifications(start, self._batch_size, _topics(behind), head)
        except UnknownEventAt as unknown:
            self._feed_up_to(unknown.before, behind, unknown.position - 1)
            _stop_before(unknown, behind)
            return False
        upto = head if len(batch) < self._batch_size else batch[-1][0].id
        return self._feed_up_to(batch, behind, upto) and upto < head

    def _feed_up_to(self, batch: Batch, behind: Sequence[tuple[_Turn, int]], upto: int) -> bool:
        """Hand each consumer its part of ``batch``; whether all of them took it."""
        fed = [
            turn.take(_slice(batch, position, turn.consumer.topics), upto)
            for turn, position in behind
            if position < upto  # one already past a full batch's end waits for a later one
        ]
        return all(fed)

    def start(self) -> None:
        """Read in a background thread until ``stop``."""
        self._loop.start()

    def stop(self) -> None:
        """Stop after the current batch; the reader's thread then releases the consumers'
        locks (never while one of them is still writing)."""
        self._loop.stop()

    def _release_all(self) -> None:
        for turn in self._turns:
            turn.release()


class _Turn:
    """One consumer's part in the reader: its lock, held across batches, and its failures."""

    def __init__(self, consumer: Consumer, lock: Lock | None) -> None:
        self.consumer = consumer
        self._lock = lock
        self._context: AbstractContextManager[Held] | None = None
        self._held: Held | None = None
        self._ask_at = 0.0  # when to ask for the lock again
        self._resume_at = 0.0  # a failed consumer pauses until then

    def wants(self) -> tuple[int | None, bool]:
        """Its position (``None`` unless this process holds its lock), after its own work; and
        whether that work did anything."""
        if time.monotonic() < self._resume_at or not self._holds():
            return None, False
        try:
            worked = self.consumer.work() > 0
            return self.consumer.wants(), worked
        except UnknownEventAt as unknown:  # its own read (a rebuild's batch) met one
            self.stand_by(_stopped_before(unknown))
            return None, False
        except Exception as failure:  # noqa: BLE001 - logged; asked again at the next batch
            self._failed("failed", failure)
            return None, False

    def take(self, batch: Batch, upto: int) -> bool:
        """Hand the consumer its batch; whether it took it."""
        try:
            self.consumer.take(batch, upto)
        except Exception as failure:  # noqa: BLE001 - logged; it reads these events again
            self._failed("batch failed", failure)
            return False
        return True

    def stand_by(self, why: str) -> None:
        """Stop here: let go of the lock for ``STAND_BY_S``, for another process to take."""
        log.warning("%s: %s; standing by for %g s, for a process that knows it to take over",
                    self.consumer.lock_name, why, STAND_BY_S)  # fmt: skip
        self.release()
        self._resume_at = self._ask_at = time.monotonic() + STAND_BY_S

    def release(self) -> None:
        """Let go of the lock (stopping)."""
        context, self._context, self._held = self._context, None, None
        if context is not None:
            try:
                context.__exit__(None, None, None)
            except Exception as failure:  # noqa: BLE001 - logged; the lock goes with its connection
                self._failed("could not release its lock", failure)

    def _holds(self) -> bool:
        if self._lock is None:
            return True
        if self._held is not None:
            try:
                self._held.verify()
            except Exception as failure:  # noqa: BLE001 - logged; a lost lock means stand by
                self._failed("lost its lock", failure, f"asking again in {STAND_BY_S:g} s")
                self.release()
                self._ask_at = time.monotonic() + STAND_BY_S
                return False
            return True
        if time.monotonic() < self._ask_at:
            return False
        return self._take_lock(self._lock)

    def _take_lock(self, lock: Lock) -> bool:
        self._ask_at = time.monotonic() + STAND_BY_S
        try:
            context = lock(self.consumer.lock_name)
            held = context.__enter__()
        except Exception as failure:  # noqa: BLE001 - logged; asked again later
            self._failed("cannot take its lock", failure, f"asking again in {STAND_BY_S:g} s")
            return False
        if not held:
            context.__exit__(None, None, None)
            return False
        self._context, self._held = context, held
        self.consumer.resume()  # another process may have moved it on meanwhile
        return True

    def _failed(self, what: str, failure: Exception, then: str = "") -> None:
        if not then:
            self._resume_at = time.monotonic() + PAUSE_AFTER_FAILURE_S
            then = f"retrying in {PAUSE_AFTER_FAILURE_S:g} s"
        log_failure(log, failure, f"{self.consumer.lock_name}: {what}", then)


def _stop_before(unknown: UnknownEventAt, behind: Sequence[tuple[_Turn, int]]) -> None:
    """Stop the consumers that read the unknown event's type before it."""
    for turn, _position in behind:
        if not turn.consumer.topics or unknown.stored_name in turn.consumer.topics:
            turn.stand_by(_stopped_before(unknown))


def _stopped_before(unknown: UnknownEventAt) -> str:
    return (
        f"stopped before position {unknown.position}, an event of type "
        f"{unknown.stored_name!r} that this version of the engine does not know"
    )


def _topics(behind: Sequence[tuple[_Turn, int]]) -> list[str]:
    """Every topic one of them reads; none (the whole log) when one of them reads everything."""
    topics: set[str] = set()
    for turn, _position in behind:
        if not turn.consumer.topics:
            return []
        topics.update(turn.consumer.topics)
    return sorted(topics)


def _slice(batch: Batch, after: int, topics: Sequence[str]) -> Batch:
    """The part of ``batch`` a consumer at ``after`` reading ``topics`` has not seen."""
    wanted = frozenset(topics)
    return [
        (notification, event)
        for notification, event in batch
        if notification.id > after and (not wanted or notification.topic in wanted)
    ]
