"""Following the event log: hand each event of some topics after a tracked position to a
handler, and record the new position.

In the engine the process's log reader (``adapters.log_reader``) feeds the follower; it is woken
by appends in this process and, on PostgreSQL, by the recorder's ``NOTIFY`` on the events
channel (``PostgresWakeUp``). ``run_once`` reads for itself (tests). Handling is at-least-once:
the position is recorded once per batch, so a crash in the middle of a batch repeats the
batch's events (the handlers are idempotent). An event appended while tracing is handled in a
span continuing its trace. A follower may be shown each batch whole before its events are
handled one by one (``look_ahead``: the process manager leaves out what the batch makes moot).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import psycopg
from eventsourcing.persistence import IntegrityError, Notification, Tracking

from adapters.eventstore import RecorderEventStore, topics_of
from adapters.outages import log_failure
from adapters.tracing import continued, trace_of
from domain.events import DomainEvent

log = logging.getLogger(__name__)
RECONNECT_S = 1.0  # how long a LISTEN connection that failed waits before connecting again


class LogFollower:
    """Feeds a handler with the log's events of the given types, from where it left off."""

    def __init__(
        self,
        name: str,
        store: RecorderEventStore,
        handler: Callable[[DomainEvent], None],
        topics: Sequence[type[DomainEvent]],
        *,
        batch_size: int = 100,
        look_ahead: Callable[[Sequence[DomainEvent]], None] | None = None,
    ) -> None:
        self.name = name
        self._store = store
        self._handler = handler
        self._look_ahead = look_ahead
        self._topics = topics_of(topics)
        self._batch_size = batch_size
        self._tracking = store.tracking_recorder()
        self._position: int | None = None

    @property
    def lock_name(self) -> str:
        """One follower of a name across processes: the lock it runs under."""
        return f"follower:{self.name}"

    @property
    def topics(self) -> Sequence[str]:
        """The topics of the events it handles."""
        return self._topics

    @property
    def position(self) -> int:
        """The last log position handled (read from the tracking table at first, and again
        after a failed batch; kept in memory otherwise)."""
        if self._position is None:
            self._position = self._tracking.max_tracking_id(self.name) or 0
        return self._position

    def run_once(self) -> int:
        """Handle one batch of new events and record, once, how far it got; return how many
        notifications were read. A handler that raises ends the batch: what was handled before
        it is recorded, and the next batch starts at the failing event."""
        batch = self._store.notifications(self.position, self._batch_size, self._topics)
        self._handle(batch, batch[-1][0].id if batch else self.position)
        return len(batch)

    def work(self) -> int:
        """Nothing of its own besides the log (the reader's consumer protocol)."""
        return 0

    def resume(self) -> None:
        """Read the position from the tracking table again (its lock was just taken)."""
        self._position = None

    def wants(self) -> int:
        """The position after which it needs events."""
        return self.position

    def take(self, batch: Sequence[tuple[Notification, DomainEvent]], upto: int) -> None:
        """Handle the reader's batch: every event up to ``upto`` has been seen. Past events of
        other topics only, the position moves on in memory (a restart reads them again)."""
        if batch:
            self._handle(batch, upto)
        else:
            self._position = max(self.position, upto)

    def _handle(self, batch: Sequence[tuple[Notification, DomainEvent]], upto: int) -> None:
        if not batch:
            return
        handled: int | None = None
        if self._look_ahead is not None:
            self._look_ahead([event for _, event in batch])
        try:
            for notification, event in batch:
                with continued(trace_of(notification.state), f"{self.name} {type(event).__name__}"):
                    self._handler(event)
                handled = notification.id
            handled = upto
        finally:
            self._track(handled)

    def _track(self, position: int | None) -> None:
        if position is None:
            return
        try:
            self._tracking.insert_tracking(Tracking(self.name, position))
        except IntegrityError:
            # The library retries an insert whose connection broke (a database restart); when
            # the broken try had committed, the retry finds the position already recorded.
            if (self._tracking.max_tracking_id(self.name) or 0) < position:
                self._position = None
                raise
        except Exception:
            self._position = None  # not recorded: read it again before the next batch
            raise
        self._position = position


class PostgresWakeUp:
    """Wakes followers when the PostgreSQL recorder announces an append (LISTEN/NOTIFY)."""

    def __init__(self, conninfo: str, channel: str, wake: Callable[[], None]) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._wake = wake
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-listen", daemon=True)

    def start(self) -> None:
        """Listen in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop listening."""
        self._stopping.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._listen()
            except Exception as failure:  # noqa: BLE001 - logged; the listener reconnects
                then = f"reconnecting in {RECONNECT_S:g} s"
                log_failure(log, failure, f"LISTEN on {self._channel} interrupted", then)
                self._stopping.wait(RECONNECT_S)

    def _listen(self) -> None:
        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(self._channel)))
            while not self._stopping.is_set():
                for _ in conn.notifies(timeout=0.5):
                    self._wake()
