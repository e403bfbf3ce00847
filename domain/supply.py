"""Supply decisions: buying the keys from Kinguin, following its status (asked by the ``deliver``
step, which Kinguin's webhooks only wake), recording the delivered keys, and what happens when it
fails — give up, or an admin's retry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

import msgspec

from domain.errors import TransitionRefused
from domain.events import (
    AttemptFailed,
    CostCapRaised,
    DomainEvent,
    FulfillmentFailed,
    FulfillmentRetried,
    KeyDelivered,
    KeysReserved,
    OrderFulfilled,
    PurchaseHeld,
    PurchaseResumed,
    SupplierOrderFailed,
    SupplierOrderStatusChanged,
    SupplierPriceChanged,
)
from domain.order import SUPPLIER_FAILURE_STATUSES, DeliveredKey, Order, Stamper, Status

COMPLETED = "completed"  # Kinguin's status of a purchase whose keys are all delivered


def reserved(
    order: Order,
    *,
    supplier_order_id: str,
    now: datetime,
    receipts: Sequence[DeliveredKey] = (),
) -> list[DomainEvent]:
    """Record Kinguin's acceptance of the purchase; only a paid order is reserved, once.

    ``receipts``: the keys Kinguin had already delivered when it accepted the purchase. With
    every one of them there, the order is fulfilled in the same decision (one save, no
    ``deliver`` step); with fewer, they are left for the ``deliver`` step to collect.
    """
    if order.status is not Status.PAID:
        return []
    stamp = Stamper(order.id, order.version, now)
    reservation = stamp(KeysReserved, supplier_order_id=supplier_order_id)
    if len(receipts) != order.quantity:
        return [reservation]
    return [reservation, *_delivery(order, supplier_order_id, receipts, stamp, now)]


def supplier_failed(order: Order, *, reason: str, now: datetime) -> list[DomainEvent]:
    """Record that Kinguin refused the purchase: the order needs an admin."""
    if order.status not in (Status.PAID, Status.RESERVED):
        return []
    stamp = Stamper(order.id, order.version, now)
    return [stamp(SupplierOrderFailed, reason=reason), stamp(FulfillmentFailed, reason=reason)]


PRICE_CHANGED = "supplier_price_changed"
INSUFFICIENT_BALANCE = "insufficient_balance"
SUPPLIER_ORDER_LOST = "supplier_order_lost"


def price_changed(
    order: Order, current_costs: Mapping[str, Decimal | None], now: datetime
) -> list[DomainEvent]:
    """Kinguin sells a line only above its cost cap: record the new costs and fail the order
    with ``supplier_price_changed`` for an admin to retry at the new cost, or refund."""
    if order.status is not Status.PAID:
        return []
    stamp = Stamper(order.id, order.version, now)
    events: list[DomainEvent] = [
        stamp(
            SupplierPriceChanged,
            product_id=item.product_id,
            cost_cap=item.cost_cap or item.unit_price,
            current_cost=current_costs.get(item.product_id),
        )
        for item in order.items
        if item.product_id in current_costs
    ]
    events.append(stamp(SupplierOrderFailed, reason=PRICE_CHANGED))
    events.append(stamp(FulfillmentFailed, reason=PRICE_CHANGED))
    return events


def held(
    order: Order, *, reason: str, needed: Decimal, balance: Decimal | None, now: datetime
) -> list[DomainEvent]:
    """The purchase waits (once recorded per hold): not a failure, visible to admins."""
    if order.status is not Status.PAID or order.held == reason:
        return []
    stamp = Stamper(order.id, order.version, now)
    return [stamp(PurchaseHeld, reason=reason, needed=needed, balance=balance)]


STEP_STATUS = {"reserve": Status.PAID, "deliver": Status.RESERVED}


def attempt_failed(
    order: Order,
    *,
    step: str,
    error: str,
    attempts_seen: int,
    budget: int,
    delay_s: float,
    now: datetime,
) -> list[DomainEvent]:
    """Count one failed attempt of ``step`` against the order's budget: try again after
    ``delay_s``, or, with the budget spent, fail the order for an admin. An attempt counts once
    (``attempts_seen``: the count when it began), however many runs of the step overlapped."""
    if order.status is not STEP_STATUS[step] or order.attempts != attempts_seen:
        return []
    attempt = order.attempts + 1
    stamp = Stamper(order.id, order.version, now)
    if attempt >= budget:
        reason = f"{step} failed {attempt} times; last error: {error}"
        return [
            stamp(AttemptFailed, step=step, attempt=attempt, error=error, retry_at=None),
            stamp(FulfillmentFailed, reason=reason),
        ]
    retry_at = now + timedelta(seconds=delay_s)
    return [stamp(AttemptFailed, step=step, attempt=attempt, error=error, retry_at=retry_at)]


def too_early(order: Order, now: datetime) -> bool:
    """A failed step is not tried again before its time (a duplicate message waits)."""
    return order.retry_at is not None and now < order.retry_at


def gave_up(order: Order, *, reason: str, now: datetime) -> list[DomainEvent]:
    """Background work failed past its retries: the order needs an admin."""
    if order.status not in (Status.PAID, Status.RESERVED):
        return []
    return [Stamper(order.id, order.version, now)(FulfillmentFailed, reason=reason)]


def retried(
    order: Order,
    *,
    by: str,
    now: datetime,
    new_costs: Mapping[str, Decimal] | None = None,
) -> list[DomainEvent]:
    """An admin sends a failed order back: to be bought again, or delivered if already bought.

    An order that failed because the supplier's price moved is retried at the new cost
    (``new_costs`` per product): each line's cap is raised to it, with the margin it leaves.
    """
    refusal = retry_refusal(order)
    if refusal is not None:
        raise TransitionRefused(refusal)
    stamp = Stamper(order.id, order.version, now)
    events: list[DomainEvent] = []
    if order.failure_reason == PRICE_CHANGED:
        events.extend(_caps_raised(order, new_costs or {}, by, stamp))
    usable = (
        order.supplier_order_id
        and order.supplier_status not in SUPPLIER_FAILURE_STATUSES
        and not (order.failure_reason or "").startswith(SUPPLIER_ORDER_LOST)
    )
    resume = Status.RESERVED if usable else Status.PAID
    events.append(stamp(FulfillmentRetried, by=by, resume_from=resume.value))
    return events


def purchase_resumed(order: Order, *, by: str, now: datetime) -> list[DomainEvent]:
    """An admin has the held purchase tried again now (the balance was topped up)."""
    refusal = resume_refusal(order)
    if refusal is not None:
        raise TransitionRefused(refusal)
    return [Stamper(order.id, order.version, now)(PurchaseResumed, by=by)]


def resume_refusal(order: Order) -> str | None:
    """Why the purchase cannot be resumed, or None."""
    if order.status is not Status.PAID or not order.held:
        return "the purchase is not waiting for the supplier balance"
    return None


def retry_refusal(order: Order) -> str | None:
    """Why the order cannot be retried, or None."""
    if order.status is not Status.FULFILLMENT_FAILED:
        return f"order is {order.status}; only fulfillment_failed orders are retried"
    return None


def _caps_raised(
    order: Order, new_costs: Mapping[str, Decimal], by: str, stamp: Stamper
) -> list[DomainEvent]:
    events: list[DomainEvent] = []
    for item in order.items:
        new_cost = new_costs.get(item.product_id)
        old_cap = item.cost_cap or item.unit_price
        if new_cost is None or new_cost <= old_cap:
            continue
        events.append(
            stamp(
                CostCapRaised,
                by=by,
                product_id=item.product_id,
                old_cap=old_cap,
                new_cap=new_cost,
                margin=item.unit_price - new_cost,
            )
        )
    return events


class SupplierNotice(msgspec.Struct, frozen=True, kw_only=True):
    """What Kinguin says of a purchase: in a verified ``order.status`` webhook, or asked."""

    supplier_order_id: str
    status: str
    updated_at: str
    external_id: str | None = None


def wakes_delivery(order: Order, notice: SupplierNotice) -> bool:
    """Whether a Kinguin ``order.status`` webhook is news for the ``deliver`` step: the order
    waits for the keys of that very purchase, and Kinguin says it completed or failed. The
    webhook itself changes nothing: ``deliver``, the one writer of a reserved order, asks
    Kinguin and records what it answers."""
    if order.status is not Status.RESERVED:
        return False
    if order.supplier_order_id != notice.supplier_order_id or not _this_attempt(order, notice):
        return False
    return notice.status == COMPLETED or notice.status in SUPPLIER_FAILURE_STATUSES


def supplier_polled(order: Order, notice: SupplierNotice, now: datetime) -> list[DomainEvent]:
    """Record what Kinguin answered about the purchase, when it is news; a purchase it says
    canceled or refunded fails the reserved order for an admin."""
    if notice.status == order.supplier_status or not _is_current(order, notice):
        return []
    stamp = Stamper(order.id, order.version, now)
    events: list[DomainEvent] = [
        stamp(
            SupplierOrderStatusChanged,
            supplier_order_id=notice.supplier_order_id,
            status=notice.status,
            updated_at=notice.updated_at,
        )
    ]
    if notice.status in SUPPLIER_FAILURE_STATUSES and order.status is Status.RESERVED:
        reason = f"supplier order {notice.status}"
        events.append(stamp(SupplierOrderFailed, reason=reason))
        events.append(stamp(FulfillmentFailed, reason=reason))
    return events


def _is_current(order: Order, notice: SupplierNotice) -> bool:
    if order.supplier_order_id not in (None, notice.supplier_order_id):
        return False
    if not _this_attempt(order, notice):
        return False
    if order.status not in (Status.PAID, Status.RESERVED):
        return False
    return order.supplier_updated_at is None or notice.updated_at > order.supplier_updated_at


def _this_attempt(order: Order, notice: SupplierNotice) -> bool:
    """Whether the notice is about the order's current purchase, not an earlier attempt's (its
    ``orderExternalId``, when Kinguin gives one, is the order's current reference)."""
    return notice.external_id in (None, order.supplier_reference)


def keys_delivered(
    order: Order, receipts: Sequence[DeliveredKey], now: datetime
) -> list[DomainEvent]:
    """Record every delivered key and the fulfilment; only a reserved order, with all its keys."""
    if order.status is not Status.RESERVED:
        return []
    if len(receipts) != order.quantity:
        raise TransitionRefused(f"expected {order.quantity} keys, got {len(receipts)}")
    supplier_order_id = order.supplier_order_id or ""
    return _delivery(order, supplier_order_id, receipts, Stamper(order.id, order.version, now), now)


def _delivery(
    order: Order,
    supplier_order_id: str,
    receipts: Sequence[DeliveredKey],
    stamp: Stamper,
    now: datetime,
) -> list[DomainEvent]:
    """Kinguin's purchase is ``completed`` (its word for "all keys delivered"), one
    ``KeyDelivered`` per key, then ``OrderFulfilled``."""
    events: list[DomainEvent] = []
    if order.supplier_status != COMPLETED:
        events.append(
            stamp(
                SupplierOrderStatusChanged,
                supplier_order_id=supplier_order_id,
                status=COMPLETED,
                updated_at=now.isoformat(timespec="milliseconds"),
            )
        )
    events += [
        stamp(
            KeyDelivered,
            key_id=r.key_id,
            product_id=r.product_id,
            vault_ref=r.vault_ref,
            fingerprint=r.fingerprint,
            content_type=r.content_type,
        )
        for r in receipts
    ]
    events.append(stamp(OrderFulfilled, key_count=len(receipts)))
    return events
