"""Payment decisions: the NOWPayments invoice and what each IPN does to the order. A notice
moves the order only if it is for this order's invoice, price and currency and is not a
re-deposit; otherwise it is an audit line (and a flag when it claims money arrived)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import msgspec

from domain.errors import TransitionRefused
from domain.events import (
    DomainEvent,
    OrderPaid,
    PaymentFailed,
    PaymentFlagged,
    PaymentInvoiceCreated,
    PaymentStatusChanged,
    PaymentUnderpaid,
    WebhookReceived,
)
from domain.order import AWAITING_PAYMENT, PAYMENT_FAILURE_STATUSES, Order, Stamper, Status


def invoice_created(
    order: Order, *, invoice_id: str, invoice_url: str, now: datetime
) -> list[DomainEvent]:
    """Record the NOWPayments invoice; only an order still awaiting payment takes one."""
    if order.status not in AWAITING_PAYMENT:
        raise TransitionRefused(f"order is {order.status}; it takes no new invoice")
    stamp = Stamper(order.id, order.version, now)
    created = stamp(
        PaymentInvoiceCreated,
        invoice_id=invoice_id,
        invoice_url=invoice_url,
        price_amount=order.total,
        price_currency=order.currency,
    )
    return [created]


class PaymentNotice(msgspec.Struct, frozen=True, kw_only=True):
    """What a verified NOWPayments IPN says, in the terms the order needs."""

    payment_id: str
    payment_status: str
    invoice_id: str | None = None
    price_amount: Decimal | None = None
    price_currency: str | None = None
    actually_paid: str | None = None
    pay_currency: str | None = None
    parent_payment_id: str | None = None


def payment_notified(order: Order, notice: PaymentNotice, now: datetime) -> list[DomainEvent]:
    """Record an IPN as an audit line, and move the order if the notice allows it."""
    stamp = Stamper(order.id, order.version, now)
    events: list[DomainEvent] = [
        stamp(
            WebhookReceived,
            provider="nowpayments",
            event_id=f"{notice.payment_id}:{notice.payment_status}",
            verified=True,
            summary=f"payment {notice.payment_id} {notice.payment_status}",
        ),
        stamp(
            PaymentStatusChanged,
            payment_id=notice.payment_id,
            payment_status=notice.payment_status,
            actually_paid=notice.actually_paid,
            pay_currency=notice.pay_currency,
            parent_payment_id=notice.parent_payment_id,
        ),
    ]
    mismatch = _mismatch(order, notice)
    if mismatch is None:
        events.extend(_payment_transition(order, notice, stamp))
    elif notice.payment_status in ("finished", "partially_paid"):
        events.append(stamp(PaymentFlagged, payment_id=notice.payment_id, reason=mismatch))
    return events


def _mismatch(order: Order, notice: PaymentNotice) -> str | None:
    """Why an IPN may not move the order, if it may not: it must be this order's invoice, price
    and currency, and not a re-deposit (which NOWPayments reports as a payment of its own)."""
    if notice.parent_payment_id is not None:
        return f"re-deposit linked to payment {notice.parent_payment_id}"
    if notice.invoice_id is not None and notice.invoice_id != order.invoice_id:
        return f"invoice {notice.invoice_id} is not the order's invoice {order.invoice_id}"
    if notice.price_currency is not None and notice.price_currency.lower() != order.currency:
        return f"currency {notice.price_currency} is not the order's {order.currency}"
    if notice.price_amount is not None and notice.price_amount < order.total:
        return f"price {notice.price_amount} is below the order's total {order.total}"
    return None


def _payment_transition(order: Order, notice: PaymentNotice, stamp: Stamper) -> list[DomainEvent]:
    status = notice.payment_status
    may_pay = order.status in AWAITING_PAYMENT or order.status is Status.UNDERPAID
    if status == "finished" and may_pay:
        return [stamp(OrderPaid, payment_id=notice.payment_id)]
    if status == "partially_paid" and order.status in AWAITING_PAYMENT:
        return [
            stamp(
                PaymentUnderpaid, payment_id=notice.payment_id, actually_paid=notice.actually_paid
            )
        ]
    if status in PAYMENT_FAILURE_STATUSES and may_pay:
        return [stamp(PaymentFailed, payment_id=notice.payment_id, reason=status)]
    return []
