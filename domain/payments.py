"""Payment decisions: the NOWPayments invoice and what each IPN does to the order.

A notice moves the order only when it is complete and matches: this order's invoice, price and
currency, not a re-deposit, and — when it says money arrived (``finished``, ``partially_paid``)
— how much arrived. NOWPayments may mark a payment ``finished`` for an amount other than the
price (EXTERNAL_APIS §2.5), so ``finished`` pays only when the amount received covers the total.
Money that cannot move the order (short, unmatched, incomplete, or for an order already paid,
failed or refunded) is flagged for an admin with ``PaymentFlagged``; everything else that cannot
move it is an audit line.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_DOWN, Decimal, InvalidOperation

import msgspec

from domain.errors import TransitionRefused
from domain.events import (
    DomainEvent,
    OrderPaid,
    PaymentFailed,
    PaymentFlagged,
    PaymentFlagsResolved,
    PaymentInvoiceCreated,
    PaymentStatusChanged,
    PaymentUnderpaid,
    WebhookReceived,
)
from domain.order import AWAITING_PAYMENT, PAYMENT_FAILURE_STATUSES, Order, Stamper, Status

MONEY_STATUSES = frozenset({"finished", "partially_paid"})  # the funds reached the shop
TOLERANCE = Decimal(0)
"""How far below the total a ``finished`` payment may fall and still pay the order: none. A
customer who pays short is flagged; an admin decides (refund what was paid, or settle by hand)."""
AMOUNT_PLACES = Decimal("1e-8")  # received amounts are kept to 8 places, rounded down


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
    """What a verified NOWPayments IPN says, in the terms the order needs (EXTERNAL_APIS §2.6):
    ``price_amount`` in ``price_currency`` is the invoice's price; ``pay_amount`` is what it
    asked in ``pay_currency`` and ``actually_paid`` what arrived there; ``actually_paid_at_fiat``
    is NOWPayments' own conversion; ``outcome_amount`` in ``outcome_currency`` is what reaches
    the shop after fees."""

    payment_id: str
    payment_status: str
    invoice_id: str | None = None
    price_amount: Decimal | None = None
    price_currency: str | None = None
    actually_paid: Decimal | None = None
    pay_currency: str | None = None
    parent_payment_id: str | None = None
    pay_amount: Decimal | None = None
    actually_paid_at_fiat: Decimal | None = None
    outcome_amount: Decimal | None = None
    outcome_currency: str | None = None


def amount_received(notice: PaymentNotice) -> Decimal | None:
    """What the payment brought in the invoice's price currency, converted as the invoice was:
    ``actually_paid * price_amount / pay_amount``; NOWPayments' ``actually_paid_at_fiat`` when
    the IPN has no ``pay_amount`` (real IPNs often carry 0 there, so it is only a fallback);
    None when the IPN does not say. ``outcome_amount`` is not used: it is net of fees."""
    paid, asked, price = notice.actually_paid, notice.pay_amount, notice.price_amount
    if paid is not None and asked is not None and asked > 0 and price is not None:
        return _kept(paid * price / asked)
    at_fiat = notice.actually_paid_at_fiat
    if at_fiat is not None and at_fiat > 0:
        return _kept(at_fiat)
    return None


def payment_notified(order: Order, notice: PaymentNotice, now: datetime) -> list[DomainEvent]:
    """Record an IPN as an audit line, and move or flag the order as the notice allows."""
    stamp = Stamper(order.id, order.version, now)
    events: list[DomainEvent] = [
        stamp(
            WebhookReceived,
            provider="nowpayments",
            event_id=f"{notice.payment_id}:{notice.payment_status}",
            verified=True,
            summary=f"payment {notice.payment_id} {notice.payment_status}",
        ),
        _status_changed(stamp, notice),
    ]
    if _already_counted(order, notice):
        return events
    problem = _problem(order, notice)
    if problem is None:
        events.extend(_payment_transition(order, notice, stamp))
        return events
    reason = f"payment {notice.payment_id} {notice.payment_status}: {problem}"
    # Flag money only; the same reason twice (an admin's replay) is one flag.
    if notice.payment_status in MONEY_STATUSES and reason not in order.flags:
        events.append(stamp(PaymentFlagged, payment_id=notice.payment_id, reason=reason))
    return events


def _status_changed(stamp: Stamper, notice: PaymentNotice) -> PaymentStatusChanged:
    return stamp(
        PaymentStatusChanged,
        payment_id=notice.payment_id,
        payment_status=notice.payment_status,
        actually_paid=_text(notice.actually_paid),
        pay_currency=notice.pay_currency,
        parent_payment_id=notice.parent_payment_id,
        pay_amount=_text(notice.pay_amount),
        actually_paid_at_fiat=_text(notice.actually_paid_at_fiat),
        outcome_amount=_text(notice.outcome_amount),
        outcome_currency=notice.outcome_currency,
    )


def _already_counted(order: Order, notice: PaymentNotice) -> bool:
    """Money from the payment that already moved the order, bringing nothing more: a late or
    replayed notice of it (the inbox drops exact repeats before they get here)."""
    if notice.payment_status not in MONEY_STATUSES or notice.payment_id != order.payment_id:
        return False
    if order.status is Status.UNDERPAID and notice.payment_status == "finished":
        return False  # its `finished` may still pay
    received = amount_received(notice)
    return received is None or order.amount_paid is None or received <= order.amount_paid


def _problem(order: Order, notice: PaymentNotice) -> str | None:
    """Why the notice may not move the order, if it may not."""
    if notice.parent_payment_id is not None:
        return f"re-deposit linked to payment {notice.parent_payment_id}"
    if notice.payment_status in MONEY_STATUSES:
        late = _late_money(order, notice)
        if late is not None:
            return late
    return _mismatch(order, notice) or _shortfall(order, notice)


def _late_money(order: Order, notice: PaymentNotice) -> str | None:
    """Money for an order that can no longer take it (a second payment, or one after the order
    failed or was refunded)."""
    if order.status in AWAITING_PAYMENT:
        return None
    if order.status is Status.UNDERPAID:
        further = notice.payment_id != order.payment_id  # more on its own payment is not late
        if further and notice.payment_status == "partially_paid":
            return f"a further partial payment of an order underpaid by payment {order.payment_id}"
        return None
    received = amount_received(notice)
    currency = notice.price_currency or order.currency
    amount = f"{received:f} {currency}" if received is not None else "an amount"
    earlier = f"; the order's payment is {order.payment_id}" if order.payment_id else ""
    return f"{amount} received for an order that is {order.status}{earlier}"


def _mismatch(order: Order, notice: PaymentNotice) -> str | None:
    """What the notice lacks, or how it differs from the order's invoice, price and currency."""
    missing = [
        name
        for name, value in (
            ("invoice_id", notice.invoice_id),
            ("price_amount", notice.price_amount),
            ("price_currency", notice.price_currency),
        )
        if value is None
    ]
    if notice.payment_status in MONEY_STATUSES and amount_received(notice) is None:
        missing.append("the amount paid (actually_paid and pay_amount)")
    if missing:
        return f"the IPN lacks {', '.join(missing)}"
    if notice.invoice_id != order.invoice_id:
        return f"invoice {notice.invoice_id} is not the order's invoice {order.invoice_id}"
    if (notice.price_currency or "").lower() != order.currency:
        return f"currency {notice.price_currency} is not the order's {order.currency}"
    if notice.price_amount is not None and notice.price_amount < order.total:
        return f"price {notice.price_amount} is below the order's total {order.total}"
    return None


def _shortfall(order: Order, notice: PaymentNotice) -> str | None:
    """A ``finished`` payment that does not cover the total (beyond ``TOLERANCE``)."""
    received = amount_received(notice)
    if notice.payment_status != "finished" or received is None:
        return None
    if received + TOLERANCE >= order.total:
        return None
    return f"{received:f} {order.currency} received is below the order's total {order.total}"


def _payment_transition(order: Order, notice: PaymentNotice, stamp: Stamper) -> list[DomainEvent]:
    status = notice.payment_status
    may_pay = order.status in AWAITING_PAYMENT or order.status is Status.UNDERPAID
    received = amount_received(notice)
    if status == "finished" and may_pay:
        paid = stamp(OrderPaid, payment_id=notice.payment_id, amount_received=received)
        return [paid, *_earlier_partial(order, notice, stamp)]
    if status == "partially_paid" and (
        order.status in AWAITING_PAYMENT or _more_of_it(order, notice)
    ):
        return [
            stamp(
                PaymentUnderpaid,
                payment_id=notice.payment_id,
                actually_paid=_text(notice.actually_paid),
                amount_received=received,
            )
        ]
    if status in PAYMENT_FAILURE_STATUSES and may_pay:
        return [stamp(PaymentFailed, payment_id=notice.payment_id, reason=status)]
    return []


def _more_of_it(order: Order, notice: PaymentNotice) -> bool:
    """More money on the payment that underpaid the order (NOWPayments reports a payment's
    running total): the order stays underpaid and remembers the new amount."""
    return order.status is Status.UNDERPAID and notice.payment_id == order.payment_id


def _earlier_partial(order: Order, notice: PaymentNotice, stamp: Stamper) -> list[DomainEvent]:
    """Another payment paid an underpaid order in full: the partial payment received before is
    now extra money, flagged for an admin to refund."""
    if order.status is not Status.UNDERPAID or notice.payment_id == order.payment_id:
        return []
    amount = f"{order.amount_paid:f} {order.currency}" if order.amount_paid else "money"
    reason = (
        f"payment {order.payment_id} partially_paid: {amount} received before payment "
        f"{notice.payment_id} paid the order in full; refund it"
    )
    return [stamp(PaymentFlagged, payment_id=order.payment_id or "", reason=reason)]


def _kept(amount: Decimal) -> Decimal | None:
    """``amount`` to 8 places, rounded down (never counting more than arrived), without
    trailing zeros; None for an amount too large to be money."""
    try:
        kept = amount.quantize(AMOUNT_PLACES, rounding=ROUND_DOWN).normalize()
    except InvalidOperation:
        return None
    exponent = kept.as_tuple().exponent
    return kept.quantize(1) if isinstance(exponent, int) and exponent > 0 else kept


def _text(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)


def flags_resolved(order: Order, *, by: str, note: str, now: datetime) -> list[DomainEvent]:
    """An admin settled the order's payment flags, saying how."""
    refusal = resolve_refusal(order)
    if refusal is not None:
        raise TransitionRefused(refusal)
    stamp = Stamper(order.id, order.version, now)
    return [stamp(PaymentFlagsResolved, by=by, note=note, flags=order.flags)]


def resolve_refusal(order: Order) -> str | None:
    """Why there is nothing to resolve, or None."""
    return None if order.flags else "the order has no payment flag"
