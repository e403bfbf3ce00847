"""The event store: the ``eventsourcing`` library's recorders (SQLite or PostgreSQL) behind the
application's ``EventStore`` port, with events encoded by msgspec.

Concurrent saves are committed together (group commit: one transaction, one table lock, one
NOTIFY for all of them), each caller still getting its own outcome.

Errors: ``eventsourcing.persistence.IntegrityError`` (a version already taken) becomes
``application.errors.ConcurrencyConflict``; anything else from the database propagates (an
outage as the library's ``OperationalError``, see ``adapters.outages``).
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    IntegrityError,
    InterfaceError,
    Notification,
    OperationalError,
    StoredEvent,
    TrackingRecorder,
)
from eventsourcing.postgres import PostgresFactory
from eventsourcing.utils import Environment

from adapters.tracing import with_trace
from application.errors import ConcurrencyConflict
from application.ports import StoredRecord
from domain.event_types import EVENT_TYPES, UnknownEventType
from domain.events import DomainEvent

APP_NAME = "bitloot"
ORIGINATOR_PAGE = 1000
INSERT_ATTEMPTS = 10  # as the library's own retry of an insert: 10 tries, 0.2 s apart
INSERT_RETRY_WAIT_S = 0.2
# PostgreSQL's detail of a unique violation on the events' key names the aggregate
_TAKEN_KEY = re.compile(r"\(originator_id, originator_version\)=\(([0-9a-fA-F-]{36}), ")


SALT_FIELD = b'"_salt":'
SALT_BYTES = 16  # 128 random bits: no list of guesses reaches a redacted event's leaf hash


class MsgspecMapper:
    """Converts domain events to stored events and back, with msgspec JSON, under the names and
    versions registered in ``domain.event_types``: the current version decodes straight into its
    class; an older one is decoded as an object and upcast first.

    Every stored event gets a random ``_salt`` beside its fields (and, appended while tracing,
    its trace: see ``adapters.tracing``); decoding ignores both. The log's Merkle leaves hash the
    stored bytes, so an evidence bundle that withholds an event's bytes from a customer (a
    redacted leaf) cannot be reversed by guessing its fields. Events stored before the salt have
    none, and their leaves stay as they were.
    """

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()
        self._decoders: dict[str, Callable[[bytes], DomainEvent]] = {}

    def to_stored_event(self, event: DomainEvent) -> StoredEvent:
        """Encode one event (its whole struct) under its type's stored name."""
        return StoredEvent(
            originator_id=event.originator_id,
            originator_version=event.originator_version,
            topic=EVENT_TYPES.stored_name(type(event)),
            state=with_trace(salted(self._encoder.encode(event))),
        )

    def to_domain_event(self, stored: StoredEvent) -> DomainEvent:
        """Decode one stored event into its class (``UnknownEventType`` for a type this version
        does not know)."""
        decode = self._decoders.get(stored.topic)
        if decode is None:
            decode = self._decoders[stored.topic] = _decoder(stored.topic)
        return decode(stored.state)


def _decoder(stored_name: str) -> Callable[[bytes], DomainEvent]:
    """How to read events stored under ``stored_name``."""
    kind, version = EVENT_TYPES.resolve(stored_name)
    current: msgspec.json.Decoder[DomainEvent] = msgspec.json.Decoder(kind.cls)
    if version == kind.version:
        return current.decode
    as_object: msgspec.json.Decoder[dict[str, Any]] = msgspec.json.Decoder(dict[str, Any])
    encode = msgspec.json.Encoder().encode

    def upcast(state: bytes) -> DomainEvent:
        return current.decode(encode(kind.upcast(as_object.decode(state), version)))

    return upcast


def salted(state: bytes) -> bytes:
    """A stored event's JSON object with a fresh random ``_salt`` as its last field."""
    salt = secrets.token_urlsafe(SALT_BYTES).encode()
    if state == b"{}":
        return b'{%s"%s"}' % (SALT_FIELD, salt)
    return b'%s,%s"%s"}' % (state[:-1], SALT_FIELD, salt)


def topics_of(event_classes: Sequence[type[DomainEvent]]) -> list[str]:
    """The names to select events of these classes from the log by (every version's, and the
    next few: ``EventTypes.selected_names``)."""
    return [name for cls in event_classes for name in EVENT_TYPES.selected_names(cls)]


class UnknownEventAt(Exception):
    """The log holds, at ``position``, an event of a type this version of the engine does not
    know (a newer release wrote it); ``before`` holds the events read before it."""

    def __init__(
        self, position: int, stored_name: str, before: list[tuple[Notification, DomainEvent]]
    ) -> None:
        super().__init__(f"event type {stored_name!r} at position {position} is not known")
        self.position = position
        self.stored_name = stored_name
        self.before = before


class _Save:
    """One caller's save waiting in the group: its events, then its outcome."""

    def __init__(self, stored: Sequence[StoredEvent]) -> None:
        self.stored = stored
        self.ids: Sequence[int] = ()
        self.failure: BaseException | None = None
        self.leads = False
        self.finished = False
        self.turn = threading.Event()  # set when finished, or when it is this save's turn to lead

    def finish(self, ids: Sequence[int] = (), failure: BaseException | None = None) -> None:
        self.ids, self.failure, self.finished = ids, failure, True
        self.turn.set()

    def outcome(self) -> int | None:
        if self.failure is not None:
            raise self.failure
        return self.ids[-1] if self.ids else None


class GroupCommit:
    """Saves arriving while another is being committed wait, and are then committed together in
    one transaction (one table lock, one NOTIFY) by the first of them, who leads the next group.
    A lone save is committed at once. Each caller still gets its own outcome: when the group's
    transaction meets a version conflict, only the conflicting save fails (see ``_commit``)."""

    def __init__(self, insert: Callable[[Sequence[StoredEvent]], Sequence[int]]) -> None:
        self._insert = insert
        self._lock = threading.Lock()
        self._queue: list[_Save] = []
        self._leading = False

    def commit(self, stored: Sequence[StoredEvent]) -> int | None:
        """Commit these events (with whatever else is waiting); the position of the last."""
        save = _Save(stored)
        with self._lock:
            self._queue.append(save)
            save.leads = not self._leading
            self._leading = True
        if not save.leads:
            save.turn.wait()
        if not save.finished:
            self._lead()
        return save.outcome()

    def _lead(self) -> None:
        with self._lock:
            group, self._queue = self._queue, []
        try:
            self._commit(group)
        except Exception as failure:  # noqa: BLE001 - handed to every caller of the group
            for save in group:
                if not save.finished:
                    save.finish(failure=failure)
        finally:
            with self._lock:
                if self._queue:
                    self._queue[0].leads = True
                    self._queue[0].turn.set()
                else:
                    self._leading = False

    def _commit(self, group: list[_Save]) -> None:
        """Commit the group in one transaction. On a version conflict the saves of the
        aggregate the store names are set apart — one of them alone fails with the conflict,
        several are committed one by one (the first may win) — and the rest is tried again as
        a group; a conflict naming no aggregate (SQLite's) commits every save alone."""
        while len(group) > 1:
            try:
                ids = self._insert([event for save in group for event in save.stored])
            except ConcurrencyConflict as conflict:
                taken = [s for s in group if _touches(s, conflict.originator_id)]
                if not taken:
                    break
                if len(taken) == 1:
                    taken[0].finish(failure=conflict)
                else:
                    for save in taken:
                        self._commit_alone(save)
                group = [s for s in group if s not in taken]
                continue
            start = 0
            for save in group:
                count = len(save.stored)
                save.finish(ids=ids[start : start + count] if ids else ())
                start += count
            return
        for save in group:
            self._commit_alone(save)

    def _commit_alone(self, save: _Save) -> None:
        try:
            save.finish(ids=self._insert(save.stored))
        except Exception as failure:  # noqa: BLE001 - handed to its caller
            save.finish(failure=failure)


def _touches(save: _Save, originator_id: UUID | None) -> bool:
    return originator_id is not None and any(e.originator_id == originator_id for e in save.stored)


def _taken(message: str) -> UUID | None:
    """The aggregate whose version was taken, when the database's message names it."""
    found = _TAKEN_KEY.search(message)
    return UUID(found.group(1)) if found else None


class RecorderEventStore:
    """The application's event store on an ``eventsourcing`` application recorder."""

    def __init__(self, factory: InfrastructureFactory[TrackingRecorder]) -> None:
        self._factory = factory
        self.recorder: ApplicationRecorder = factory.application_recorder()
        self._tracking: TrackingRecorder | None = None
        self._snapshots: AggregateRecorder | None = None
        self.mapper = MsgspecMapper()
        self._listeners: list[Callable[[], None]] = []
        self._group = GroupCommit(self._insert)

    def load(
        self,
        aggregate_id: UUID,
        *,
        after_version: int | None = None,
        until_version: int | None = None,
    ) -> list[DomainEvent]:
        """Events of one aggregate, oldest first (after ``after_version``: those that follow
        a snapshot)."""
        stored = self.recorder.select_events(aggregate_id, gt=after_version, lte=until_version)
        return [self.mapper.to_domain_event(s) for s in stored]

    def latest(self, aggregate_id: UUID) -> DomainEvent | None:
        """The newest event of one aggregate, if any."""
        stored = self.recorder.select_events(aggregate_id, desc=True, limit=1)
        return self.mapper.to_domain_event(stored[0]) if stored else None

    def originators(self, topic: type[DomainEvent]) -> list[UUID]:
        """The aggregates that have an event of this type, in log order (read in pages)."""
        found: list[UUID] = []
        position = 0
        while True:
            page = self.recorder.select_notifications(
                position, ORIGINATOR_PAGE, topics=topics_of([topic]), inclusive_of_start=False
            )
            found.extend(n.originator_id for n in page)  # type: ignore[misc]
            if len(page) < ORIGINATOR_PAGE:
                return found
            position = page[-1].id

    def save(self, events: Sequence[DomainEvent]) -> int | None:
        """Append all events in one transaction (with the saves of other threads arriving
        meanwhile: ``GroupCommit``); a taken version is a concurrency conflict — unless an
        earlier try of this very save had its connection cut (a database restart) after the
        commit: the versions then hold these events, byte for byte, and the save succeeded
        (with no position to return)."""
        position = self._group.commit([self.mapper.to_stored_event(e) for e in events])
        for listener in self._listeners:
            listener()
        return position

    def _insert(self, stored: Sequence[StoredEvent]) -> Sequence[int]:
        """The recorder's insert, retried as the library retries it (on its Operational- and
        InterfaceError), but here, so that a conflict after a cut attempt can be told from a
        writer that came first."""
        once = getattr(type(self.recorder).insert_events, "__wrapped__", None)
        cut = False
        for attempt in range(1, INSERT_ATTEMPTS + 1):
            try:
                # without the library's retry around it (a recorder that has none: as it is)
                ids: Sequence[int] | None = (
                    self.recorder.insert_events(stored)
                    if once is None
                    else once(self.recorder, stored)
                )
            except (OperationalError, InterfaceError):
                if once is None or attempt == INSERT_ATTEMPTS:
                    raise
                cut = True  # the cut may have come after the commit: we cannot know yet
                time.sleep(INSERT_RETRY_WAIT_S)
            except IntegrityError as conflict:
                if cut and self._already_stored(stored):
                    return []
                raise ConcurrencyConflict(str(conflict), _taken(str(conflict))) from conflict
            else:
                return ids or []
        raise AssertionError("unreachable")  # pragma: no cover

    def _already_stored(self, stored: Sequence[StoredEvent]) -> bool:
        """Whether every one of these events is in the store, byte for byte."""
        for originator_id in {s.originator_id for s in stored}:
            mine = sorted(
                (s for s in stored if s.originator_id == originator_id),
                key=lambda s: int(s.originator_version),
            )
            versions = [int(s.originator_version) for s in mine]
            found = self.recorder.select_events(
                originator_id, gt=min(versions) - 1, lte=max(versions)
            )
            if [(f.originator_version, f.topic, bytes(f.state)) for f in found] != [
                (s.originator_version, s.topic, bytes(s.state)) for s in mine
            ]:
                return False
        return True

    def on_append(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every append made through this store (in this process)."""
        self._listeners.append(listener)

    def notifications(
        self, after: int, limit: int, topics: Sequence[str] = (), stop: int | None = None
    ) -> list[tuple[Notification, DomainEvent]]:
        """The log after position ``after`` (up to ``stop``): at most ``limit`` notifications
        with their events, of the given topics only when topics are given. An event of a type
        this version does not know raises ``UnknownEventAt`` with the events before it."""
        found = self.recorder.select_notifications(
            after, limit, stop=stop, topics=topics, inclusive_of_start=False
        )
        decoded: list[tuple[Notification, DomainEvent]] = []
        for notification in found:
            try:
                decoded.append((notification, self.mapper.to_domain_event(notification)))
            except UnknownEventType as unknown:
                raise UnknownEventAt(notification.id, unknown.stored_name, decoded) from None
        return decoded

    def records(self, aggregate_id: UUID) -> list[StoredRecord]:
        """Every event of one aggregate as stored, oldest first."""
        return [_record(s) for s in self.recorder.select_events(aggregate_id)]

    def log_records(self, after: int, limit: int) -> list[StoredRecord]:
        """At most ``limit`` events of the log after position ``after``, as stored."""
        found = self.recorder.select_notifications(after, limit, inclusive_of_start=False)
        return [_record(n, n.id) for n in found]

    def head(self) -> int:
        """The position of the newest event in the log (0 when empty)."""
        return self.recorder.max_notification_id() or 0

    def ensure_tables(self) -> None:
        """Make the tracking and snapshot recorders now, and their tables with them (the
        engine calls it at start-up, holding the schema lock: see ``entrypoints.bootstrap``)."""
        self.tracking_recorder()
        self.snapshot_recorder()

    def snapshot_recorder(self) -> AggregateRecorder:
        """The recorder of snapshots, in the same database (made, and its table created, on
        first use: the engine does it at start-up, under the schema lock)."""
        if self._snapshots is None:
            self._snapshots = self._factory.aggregate_recorder(purpose="snapshots")
        return self._snapshots

    def tracking_recorder(self) -> TrackingRecorder:
        """The recorder of followers' positions, in the same database (made, and its table
        created, on first use)."""
        if self._tracking is None:
            self._tracking = self._factory.tracking_recorder()
        return self._tracking

    def close(self) -> None:
        """Release the database connections."""
        self._factory.close()


def _record(stored: StoredEvent, position: int = 0) -> StoredRecord:
    return StoredRecord(
        topic=stored.topic,
        originator_id=UUID(str(stored.originator_id)),
        version=int(stored.originator_version),
        state=bytes(stored.state),
        position=position,
    )


def open_event_store(env: dict[str, str]) -> RecorderEventStore:
    """Build the store from ``eventsourcing`` settings (``PERSISTENCE_MODULE`` and friends).

    ``POSTGRES_APPLICATION_NAME``, which the library does not know, names the connections of
    its PostgreSQL pool (as ``fallback_application_name``: PGAPPNAME still wins)."""
    settings = Environment(APP_NAME, {**env, "ORIGINATOR_ID_TYPE": "uuid"})
    factory = InfrastructureFactory[TrackingRecorder].construct(settings)
    name = env.get("POSTGRES_APPLICATION_NAME")
    kwargs = factory.datastore.pool.kwargs if isinstance(factory, PostgresFactory) else None
    if name and isinstance(kwargs, dict):
        # The pool connects lazily, with these keyword arguments, from the first query on.
        kwargs["fallback_application_name"] = name
    return RecorderEventStore(factory)
