"""Key access decisions: who may read an order's keys and how (reveal, download link), the
one delivery notification, and crypto-shredding. Reads are refused once the keys are gone."""

from __future__ import annotations

from datetime import datetime

from domain.errors import KeysGone, LinkRefused, TransitionRefused
from domain.events import (
    CustomerNotified,
    DeliveryEmailResent,
    DomainEvent,
    DownloadLinkIssued,
    KeysRevealed,
    KeysShredded,
)
from domain.order import Order, Stamper, Status


def revealed(
    order: Order,
    *,
    who: str,
    ip: str,
    user_agent: str,
    how: str,
    now: datetime,
    link_id: str | None = None,
) -> list[DomainEvent]:
    """Record who read the keys; only a fulfilled, unshredded order has keys to read, and a
    single-use link reads them once."""
    _check_readable(order)
    if link_id is not None and link_id not in order.issued_links:
        raise LinkRefused("this download link was never issued")
    if link_id in order.single_use_links and link_id in order.used_links:
        raise LinkRefused("this download link was already used")
    stamp = Stamper(order.id, order.version, now)
    revealed_event = stamp(
        KeysRevealed, who=who, ip=ip, user_agent=user_agent[:256], how=how, link_id=link_id
    )
    return [revealed_event]


def link_issued(
    order: Order, *, link_id: str, expires_at: datetime, single_use: bool, now: datetime
) -> list[DomainEvent]:
    """Record a download link handed to the owner."""
    _check_readable(order)
    issued = Stamper(order.id, order.version, now)(
        DownloadLinkIssued, expires_at=expires_at, link_id=link_id, single_use=single_use
    )
    return [issued]


def notified(order: Order, *, channel: str, message_id: str, now: datetime) -> list[DomainEvent]:
    """Record the one notification of a fulfilled order."""
    if order.notified or order.status is not Status.FULFILLED:
        return []
    event = Stamper(order.id, order.version, now)(
        CustomerNotified, channel=channel, message_id=message_id
    )
    return [event]


def email_resent(order: Order, *, by: str, message_id: str, now: datetime) -> list[DomainEvent]:
    """Record the delivery e-mail sent again by an admin."""
    refusal = resend_refusal(order)
    if refusal is not None:
        raise TransitionRefused(refusal)
    return [
        Stamper(order.id, order.version, now)(DeliveryEmailResent, by=by, message_id=message_id)
    ]


def resend_refusal(order: Order) -> str | None:
    """Why the delivery e-mail cannot be sent again (its link would open nothing), or None."""
    if order.status is not Status.FULFILLED:
        return f"order is {order.status}; only fulfilled orders have a delivery e-mail"
    if order.shredded:
        return "the keys were destroyed"
    if order.returning:
        return "the keys are being returned to the supplier"
    return None


def shredded(order: Order, *, who: str, now: datetime) -> list[DomainEvent]:
    """Record that the order's data key was destroyed; not while keys may still arrive."""
    if order.shredded:
        return []
    refusal = shred_refusal(order)
    if refusal is not None:
        raise TransitionRefused(refusal)
    return [Stamper(order.id, order.version, now)(KeysShredded, who=who)]


def shred_refusal(order: Order) -> str | None:
    """Why the order's keys cannot be destroyed now (already done counts), or None."""
    if order.shredded:
        return "the keys were already destroyed"
    if order.status in (Status.PAID, Status.RESERVED):
        return f"order is {order.status}; its keys are still on their way"
    return None


def _check_readable(order: Order) -> None:
    if order.shredded:
        raise KeysGone(f"order {order.id}: its keys were destroyed")
    if order.status is not Status.FULFILLED:
        raise TransitionRefused(f"order is {order.status}; it has no keys to read")
    if order.returning:
        raise TransitionRefused("the keys are being returned to the supplier")
