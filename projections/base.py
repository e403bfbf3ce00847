"""What a projection is: a named read model with its own table, the event types it reads, and
how each event changes its rows. Projections write only through the transaction they are
given, so rows and position commit together and a replay is idempotent."""

from __future__ import annotations

import inspect
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from eventsourcing.persistence import Notification

from adapters.views import Tx
from domain.events import DomainEvent

Change = dict[str, Any]

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


class Projection(ABC):
    """A read model kept in one table, ``<name>_g<generation>``."""

    name: ClassVar[str]
    topics: ClassVar[tuple[type[DomainEvent], ...]]
    schema: ClassVar[tuple[str, ...]]
    """DDL statements; ``{t}`` stands for the table of the generation being built."""
    side_tables: ClassVar[tuple[str, ...]] = ()
    """Suffixes of working tables that ``schema`` creates beside the read table (``{t}_<suffix>``,
    never read by queries); each generation's are dropped with it."""
    version: ClassVar[int] = 1
    """Raise it when ``schema`` or what ``apply`` writes changes: an engine that starts on a
    table of another version rebuilds it beside the live one (``projections.versions``)."""

    def __init_subclass__(cls) -> None:
        if inspect.isabstract(cls):
            return  # a kind of projection (``BatchedProjection``), named by its subclasses
        if not _IDENTIFIER.match(cls.name):
            raise ValueError(f"projection name {cls.name!r} is not a plain identifier")

    @abstractmethod
    def apply(self, tx: Tx, table: str, event: DomainEvent, position: int) -> Change | None:
        """Change the rows for one event (``position`` is its place in the log); return what
        live subscribers should hear once the transaction commits, if anything."""

    def apply_batch(
        self, tx: Tx, table: str, batch: Sequence[tuple[int, DomainEvent]]
    ) -> list[Change]:
        """Change the rows for a batch of events in log order (override to do it faster)."""
        changes = [self.apply(tx, table, event, position) for position, event in batch]
        return [change for change in changes if change is not None]

    def apply_records(
        self, tx: Tx, table: str, batch: Sequence[tuple[Notification, DomainEvent]]
    ) -> list[Change]:
        """What the runner calls: the batch as stored and as decoded. A projection of the
        stored bytes themselves (the log's tree) overrides it; the others read the events."""
        return self.apply_batch(tx, table, [(record.id, event) for record, event in batch])


class BatchedProjection(Projection):
    """A projection that works a whole batch at once (loading each row it touches once): one
    event is a batch of one."""

    def apply(self, tx: Tx, table: str, event: DomainEvent, position: int) -> Change | None:
        """Apply one event as a batch of one."""
        changes = self.apply_batch(tx, table, [(position, event)])
        return changes[0] if changes else None

    @abstractmethod
    def apply_batch(
        self, tx: Tx, table: str, batch: Sequence[tuple[int, DomainEvent]]
    ) -> list[Change]:
        """Change the rows for a batch of events in log order."""


def table_name(projection: str, generation: int) -> str:
    """The table holding one generation of a projection."""
    return f"{projection}_g{generation}"


def drop_generation(tx: Tx, projection: str, generation: int, sides: Sequence[str] = ()) -> None:
    """Drop one generation's table and its side tables."""
    table = table_name(projection, generation)
    for name in (table, *(f"{table}_{side}" for side in sides)):
        tx.execute(f"DROP TABLE IF EXISTS {name}")
