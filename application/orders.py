"""The one path between use cases and the event store for orders: load (fold), decide, save.

Every append goes through ``Orders.save``, so that concurrent saves can later be coalesced
(group commit) without touching the use cases. ``decide`` retries on a lost race: it reloads
the order and asks the domain again (optimistic concurrency).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import reduce
from uuid import UUID

import msgspec

from application.errors import ConcurrencyConflict, NotAllowed
from application.ports import EventStore
from domain import order as rules
from domain.errors import OrderNotFound
from domain.events import DomainEvent, OrderPlaced
from domain.order import Order

MAX_ATTEMPTS = 8  # optimistic-concurrency retries before giving up

Decision = Callable[[Order], list[DomainEvent]]


class Viewer(msgspec.Struct, frozen=True, kw_only=True):
    """Who is asking: the token's subject and role."""

    sub: str
    role: str

    @property
    def is_admin(self) -> bool:
        """Admins see every order."""
        return self.role == "admin"

    def must_be_admin(self, to: str) -> None:
        """Refuse (``NotAllowed``) anyone but an admin ``to`` do something."""
        if not self.is_admin:
            raise NotAllowed(f"only admins {to}")

    @property
    def reads_every_order(self) -> bool:
        """Admins and auditors read every order's history."""
        return self.role in ("admin", "auditor")


class Orders:
    """Orders as folded from the event store."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def load(self, order_id: UUID) -> Order:
        """The order now; ``OrderNotFound`` if there is none."""
        order = self.find(order_id)
        if order is None:
            raise OrderNotFound(str(order_id))
        return order

    def find(self, order_id: UUID | None) -> Order | None:
        """The order now, or None."""
        if order_id is None:
            return None
        events = self.store.load(order_id)
        return rules.fold(events) if events else None

    def owned(self, order_id: UUID, viewer: Viewer) -> Order:
        """The viewer's own order; anyone else's answers as not found."""
        order = self.load(order_id)
        if order.owner != viewer.sub:
            raise OrderNotFound(str(order_id))
        return order

    def history(
        self, order_id: UUID, viewer: Viewer, until_version: int | None = None
    ) -> list[DomainEvent]:
        """The order's events, oldest first, if the viewer is its owner, an admin or an
        auditor. Only an order's stream is one: every aggregate shares the store, and the ids
        of the others (products, pricing, webhook deliveries, customers) can be computed, so
        a stream that does not start with ``OrderPlaced`` answers as not found to everyone."""
        events = self.store.load(order_id, until_version=until_version)
        if not events or not isinstance(events[0], OrderPlaced):
            raise OrderNotFound(str(order_id))
        if not viewer.reads_every_order and events[0].owner != viewer.sub:
            raise OrderNotFound(str(order_id))
        return events

    def decide(self, order_id: UUID, decide: Decision, known: Order | None = None) -> Order:
        """Load, decide, save; on a lost race, reload and decide again. ``known``: the order
        as the caller has just read or written it, decided on without reading it again (were
        it out of date, its events' versions are taken and the race is lost as any other)."""
        for _ in range(MAX_ATTEMPTS):
            order = known if known is not None else self.load(order_id)
            known = None  # a lost race reads it again
            events = decide(order)
            try:
                self.save(events)
            except ConcurrencyConflict:
                continue
            return reduce(rules.apply, events, order)
        raise ConcurrencyConflict(f"order {order_id}: too many concurrent writers")

    def save(self, events: Sequence[DomainEvent]) -> None:
        """Append events atomically (nothing to do for none)."""
        if events:
            self.store.save(events)
