"""Customers' personal data: their e-mail address is sealed under a key of their own before it
enters an event, read back only where it is needed (the order view, the delivery e-mail), and
erased for good by destroying that key — the orders' history stays complete and readable."""

from __future__ import annotations

from application.orders import Viewer
from application.ports import Clock, EventStore, PersonalData
from domain import customers as rules
from domain.customers import customer_id
from domain.order import Order


class CustomerData:
    """Sealing, reading and erasing customers' personal data."""

    def __init__(self, personal: PersonalData, store: EventStore, clock: Clock) -> None:
        self._personal = personal
        self._store = store
        self._clock = clock

    def seal_email(self, customer: str, email: str) -> str:
        """The address sealed under the customer's key, ready for an event."""
        return self._personal.seal_personal(customer, email)

    def email_of(self, order: Order) -> str | None:
        """The order's e-mail address, or None if its customer was erased."""
        if order.email_sealed is None:
            return order.email or None
        return self._personal.open_personal(order.owner, order.email_sealed)

    def erase(self, customer: str, viewer: Viewer) -> bool:
        """Forget a customer's personal data; tell whether this call erased it."""
        viewer.must_be_admin("erase customers")
        self._personal.erase_customer(customer)
        already = bool(self._store.load(customer_id(customer)))
        events = rules.erased(customer, who=viewer.sub, already=already, now=self._clock.now())
        if events:
            self._store.save(events)
        return bool(events)

    def rotate(self, customer: str) -> bool:
        """Re-wrap the customer's key under the newest master key."""
        return self._personal.rewrap_customer(customer)

    def rotate_lookup(self) -> bool:
        """Re-wrap the key of the e-mail lookup under the newest master key."""
        return self._personal.rewrap_lookup()

    def email_lookup(self, email: str) -> str:
        """What the e-mail search compares: a keyed digest of the address, never the address."""
        return self._personal.lookup_digest(email)
