"""What an admin may do with an order now, and why not: the console enables each action from
these answers, and the commands refuse with the same reasons."""

from __future__ import annotations

from datetime import datetime

from domain.access import shred_refusal
from domain.order import Order
from domain.refunds import refund_refusal, return_refusal
from domain.supply import retry_refusal


def admin_actions(order: Order, now: datetime) -> dict[str, str | None]:
    """Each action of the order's page: None when the domain allows it now, else why not."""
    return {
        "refund": refund_refusal(order),
        "return_keys": return_refusal(order, now),
        "shred": shred_refusal(order),
        "retry": retry_refusal(order),
    }
