"""Refund decisions: giving a customer their money back for an order that was not delivered, and
returning a delivered order's unrevealed keys to Kinguin (then refunding it).

``refunded`` is terminal. A key return follows Kinguin's rules (EXTERNAL_APIS §1.2): once per
order, never after a key was claimed (here: revealed), never after 24 hours, never for a
pre-order. It is started, then confirmed or refused, so no read can slip in while Kinguin is
asked: reads are refused from the moment it starts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from domain.errors import TransitionRefused
from domain.events import (
    DomainEvent,
    KeyReturnAbandoned,
    KeyReturnRefused,
    KeyReturnStarted,
    KeysReturned,
    KeysShredded,
    OrderRefunded,
    RefundRequested,
)
from domain.order import Order, Stamper, Status

RETURN_WINDOW = timedelta(hours=24)
REFUNDABLE = frozenset({Status.PAID, Status.UNDERPAID, Status.FULFILLMENT_FAILED})


def refunded(
    order: Order, *, by: str, reason: str, reference: str, now: datetime
) -> list[DomainEvent]:
    """Refund a paid order that was not delivered (nor is being bought right now)."""
    refusal = refund_refusal(order)
    if refusal is not None:
        raise TransitionRefused(refusal)
    return _refund(Stamper(order.id, order.version, now), order, by, reason, reference)


def refund_refusal(order: Order) -> str | None:
    """Why the order cannot be refunded now, or None."""
    if order.status not in REFUNDABLE:
        return f"order is {order.status}; only paid orders that were not delivered are refunded"
    if order.status is Status.PAID and order.held is None:
        return "order is being bought from the supplier; refund it if that fails"
    return None


def return_started(order: Order, *, by: str, now: datetime) -> list[DomainEvent]:
    """Begin returning the keys to Kinguin, or say why they cannot go back."""
    refusal = return_refusal(order, now)
    if refusal is not None:
        raise TransitionRefused(refusal)
    return [Stamper(order.id, order.version, now)(KeyReturnStarted, by=by)]


def return_refusal(order: Order, now: datetime) -> str | None:  # noqa: PLR0911 - one per rule
    """Why the order's keys cannot be returned now, or None."""
    if order.status is not Status.FULFILLED:
        return f"order is {order.status}; only delivered orders return keys"
    if order.returning:
        return "a key return is already under way"
    if order.shredded:
        return "the keys were destroyed"
    if order.revealed:
        return "a key was revealed to the customer; revealed keys cannot be returned"
    if order.is_preorder:
        return "pre-order keys cannot be returned"
    if order.fulfilled_at is None or now - order.fulfilled_at > RETURN_WINDOW:
        return "keys can be returned within 24 hours of delivery only"
    return None


def return_confirmed(
    order: Order, *, by: str, key_ids: tuple[str, ...], reference: str, now: datetime
) -> list[DomainEvent]:
    """Kinguin took the keys back: record it, destroy our copies, refund the customer."""
    if not order.returning:
        return []
    stamp = Stamper(order.id, order.version, now)
    events: list[DomainEvent] = [stamp(KeysReturned, by=by, key_ids=key_ids)]
    if not order.shredded:
        events.append(stamp(KeysShredded, who=by))
    events.extend(_refund(stamp, order, by, "keys returned to the supplier", reference))
    return events


def return_refused(order: Order, *, reason: str, now: datetime) -> list[DomainEvent]:
    """Kinguin refused the return: the keys stay the customer's."""
    if not order.returning:
        return []
    return [Stamper(order.id, order.version, now)(KeyReturnRefused, reason=reason)]


def return_abandoned(order: Order, *, by: str, reason: str, now: datetime) -> list[DomainEvent]:
    """An admin gives up a key return that never finished: the keys stay the customer's."""
    refusal = pending_return_refusal(order)
    if refusal is not None:
        raise TransitionRefused(refusal)
    return [Stamper(order.id, order.version, now)(KeyReturnAbandoned, by=by, reason=reason)]


def pending_return_refusal(order: Order) -> str | None:
    """Why there is no key return to finish or abandon, or None."""
    return None if order.returning else "no key return is under way"


def refundable_amount(order: Order) -> Decimal:
    """What a refund gives back: what the customer paid (an underpaid order's short payment, an
    overpaid one's whole payment), or the total for orders paid before amounts were recorded."""
    return order.amount_paid if order.amount_paid is not None else order.total


def _refund(
    stamp: Stamper, order: Order, by: str, reason: str, reference: str
) -> list[DomainEvent]:
    amount = refundable_amount(order)
    return [
        stamp(RefundRequested, by=by, reason=reason, amount=amount, currency=order.currency),
        stamp(OrderRefunded, reference=reference, amount=amount),
    ]
