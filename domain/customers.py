"""Customers, as far as the engine keeps them: an aggregate per customer that records the
erasure of their personal data (right to be forgotten)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid5

from domain.events import CustomerErased, DomainEvent

_NAMESPACE = UUID("0d6c3f2e-9b1d-4f57-8e0a-5a1c2b7e9d41")


def customer_id(customer: str) -> UUID:
    """The id of a customer's aggregate (uuid5 of their subject)."""
    return uuid5(_NAMESPACE, customer)


def erased(customer: str, *, who: str, already: bool, now: datetime) -> list[DomainEvent]:
    """Record the erasure once."""
    if already:
        return []
    event = CustomerErased(
        originator_id=customer_id(customer),
        originator_version=1,
        timestamp=now,
        customer=customer,
        who=who,
    )
    return [event]
