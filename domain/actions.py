"""What an admin may do with an order now, and why not: the console enables each action from
these answers, and the commands refuse with the same reasons."""

from __future__ import annotations

from datetime import datetime

from domain.access import resend_refusal, shred_refusal
from domain.order import Order, Status
from domain.payments import resolve_refusal
from domain.refunds import pending_return_refusal, refund_refusal, return_refusal
from domain.supply import PRICE_CHANGED, resume_refusal, retry_refusal


def admin_actions(order: Order, now: datetime) -> dict[str, str | None]:
    """Each action of the order's page: None when the domain allows it now, else why not."""
    return {
        "refund": refund_refusal(order),
        "return_keys": return_refusal(order, now),
        "shred": shred_refusal(order),
        "retry": retry_refusal(order),
        "resend_email": resend_refusal(order),
        "resolve_flags": resolve_refusal(order),
        "resume": resume_refusal(order),
        "finish_return": pending_return_refusal(order),
        "abandon_return": pending_return_refusal(order),
    }


def attention(order: Order) -> str | None:
    """Why the order waits for a person, or None: ``price_changed`` (accept the new cost or
    refund), ``failed`` (retry or refund), ``returning`` (a key return under way, or one that
    never finished: finish or abandon it), ``held`` (the supplier's balance; resume after a
    top-up, or refund), ``flagged`` (a payment an admin must look at, then resolve)."""
    if order.status is Status.FULFILLMENT_FAILED:
        return "price_changed" if order.failure_reason == PRICE_CHANGED else "failed"
    if order.returning:
        return "returning"
    if order.held:
        return "held"
    if order.flags:
        return "flagged"
    return None
