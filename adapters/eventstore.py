"""The event store: the ``eventsourcing`` library's recorders (SQLite or PostgreSQL) behind the
application's ``EventStore`` port, with events encoded by msgspec.

Errors: ``eventsourcing.persistence.IntegrityError`` (a version already taken) becomes
``application.errors.ConcurrencyConflict``; anything else from the database propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import (
    ApplicationRecorder,
    InfrastructureFactory,
    IntegrityError,
    Notification,
    StoredEvent,
    TrackingRecorder,
)
from eventsourcing.utils import Environment, get_topic, resolve_topic

from application.errors import ConcurrencyConflict
from domain.events import DomainEvent

APP_NAME = "bitloot"
ORIGINATOR_PAGE = 1000


class MsgspecMapper:
    """Converts domain events to stored events and back, with msgspec JSON."""

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()
        self._decoders: dict[str, msgspec.json.Decoder[Any]] = {}

    def to_stored_event(self, event: DomainEvent) -> StoredEvent:
        """Encode one event (its whole struct) under its class's topic."""
        return StoredEvent(
            originator_id=event.originator_id,
            originator_version=event.originator_version,
            topic=get_topic(type(event)),
            state=self._encoder.encode(event),
        )

    def to_domain_event(self, stored: StoredEvent) -> DomainEvent:
        """Decode one stored event into its class."""
        decoder = self._decoders.get(stored.topic)
        if decoder is None:
            decoder = msgspec.json.Decoder(resolve_topic(stored.topic))
            self._decoders[stored.topic] = decoder
        event: DomainEvent = decoder.decode(stored.state)
        return event


def topic_of(event_class: type[DomainEvent]) -> str:
    """The stored topic of an event class."""
    return get_topic(event_class)


class RecorderEventStore:
    """The application's event store on an ``eventsourcing`` application recorder."""

    def __init__(self, factory: InfrastructureFactory[TrackingRecorder]) -> None:
        self._factory = factory
        self.recorder: ApplicationRecorder = factory.application_recorder()
        self.mapper = MsgspecMapper()
        self._listeners: list[Callable[[], None]] = []

    def load(self, aggregate_id: UUID, *, until_version: int | None = None) -> list[DomainEvent]:
        """Events of one aggregate, oldest first."""
        stored = self.recorder.select_events(aggregate_id, lte=until_version)
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
                position, ORIGINATOR_PAGE, topics=[get_topic(topic)], inclusive_of_start=False
            )
            found.extend(n.originator_id for n in page)  # type: ignore[misc]
            if len(page) < ORIGINATOR_PAGE:
                return found
            position = page[-1].id

    def save(self, events: Sequence[DomainEvent]) -> int | None:
        """Append all events in one transaction; a taken version is a concurrency conflict."""
        stored = [self.mapper.to_stored_event(e) for e in events]
        try:
            ids = self.recorder.insert_events(stored)
        except IntegrityError as conflict:
            raise ConcurrencyConflict(str(conflict)) from conflict
        for listener in self._listeners:
            listener()
        return ids[-1] if ids else None

    def on_append(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every append made through this store (in this process)."""
        self._listeners.append(listener)

    def notifications(
        self, after: int, limit: int, topics: Sequence[str] = (), stop: int | None = None
    ) -> list[tuple[Notification, DomainEvent]]:
        """The log after position ``after`` (up to ``stop``): at most ``limit`` notifications
        with their events, of the given topics only when topics are given."""
        found = self.recorder.select_notifications(
            after, limit, stop=stop, topics=topics, inclusive_of_start=False
        )
        return [(n, self.mapper.to_domain_event(n)) for n in found]

    def head(self) -> int:
        """The position of the newest event in the log (0 when empty)."""
        return self.recorder.max_notification_id() or 0

    def tracking_recorder(self) -> TrackingRecorder:
        """A recorder of followers' positions, in the same database."""
        return self._factory.tracking_recorder()

    def close(self) -> None:
        """Release the database connections."""
        self._factory.close()


def open_event_store(env: dict[str, str]) -> RecorderEventStore:
    """Build the store from ``eventsourcing`` settings (``PERSISTENCE_MODULE`` and friends)."""
    settings = Environment(APP_NAME, {**env, "ORIGINATOR_ID_TYPE": "uuid"})
    factory = InfrastructureFactory[TrackingRecorder].construct(settings)
    return RecorderEventStore(factory)
