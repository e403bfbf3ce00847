"""The order aggregate: its state, how each event changes it, and the decisions that emit events.

Decisions are pure functions ``(order, now, ...) -> list[DomainEvent]``; they never perform I/O.
A status never moves backwards: a late or duplicate notification becomes an audit line and
changes nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar
from uuid import UUID

import msgspec

from domain.errors import InvalidOrder, KeysGone, LinkRefused, OrderNotFound, TransitionRefused
from domain.events import (
    CustomerNotified,
    DomainEvent,
    DownloadLinkIssued,
    FulfillmentFailed,
    FulfillmentRetried,
    KeyDelivered,
    KeysReserved,
    KeysRevealed,
    KeysShredded,
    LineItem,
    OrderFulfilled,
    OrderPaid,
    OrderPlaced,
    PaymentFailed,
    PaymentFlagged,
    PaymentInvoiceCreated,
    PaymentStatusChanged,
    PaymentUnderpaid,
    SupplierOrderFailed,
    SupplierOrderStatusChanged,
    WebhookReceived,
)


class Status(StrEnum):
    """Where an order stands; the happy path is created → … → fulfilled."""

    CREATED = "created"
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    RESERVED = "reserved"
    FULFILLED = "fulfilled"
    UNDERPAID = "underpaid"
    PAYMENT_FAILED = "payment_failed"
    FULFILLMENT_FAILED = "fulfillment_failed"


AWAITING_PAYMENT = frozenset({Status.CREATED, Status.PENDING_PAYMENT})
PAYMENT_PENDING_STATUSES = frozenset({"waiting", "confirming", "confirmed", "sending"})
PAYMENT_FAILURE_STATUSES = frozenset({"failed", "expired", "refunded"})
SUPPLIER_FAILURE_STATUSES = frozenset({"canceled", "refunded"})
MAX_QUANTITY_PER_LINE = 9  # Kinguin sells at most 9 keys of one offer per order
MAX_LINES = 10  # and at most 10 products per order
MAX_UNIT_PRICE = Decimal(100_000)
MAX_PRICE_DECIMALS = 8
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CURRENCY = re.compile(r"^[A-Za-z]{3,10}$")


class DeliveredKey(msgspec.Struct, frozen=True, kw_only=True):
    """A key in the vault: where it is and how to recognise it, never its text."""

    key_id: str
    product_id: str
    vault_ref: str
    fingerprint: str
    content_type: str


class Order(msgspec.Struct, frozen=True, kw_only=True):
    """The order as folded from its events."""

    id: UUID
    version: int
    owner: str
    email: str
    currency: str
    items: tuple[LineItem, ...]
    total: Decimal
    status: Status
    placed_at: datetime
    updated_at: datetime
    invoice_id: str | None = None
    invoice_url: str | None = None
    payment_id: str | None = None
    supplier_order_id: str | None = None
    supplier_status: str | None = None
    supplier_updated_at: str | None = None
    keys: tuple[DeliveredKey, ...] = ()
    failure_reason: str | None = None
    email_sealed: str | None = None
    flags: tuple[str, ...] = ()
    purchase_attempt: int = 0
    shredded: bool = False
    notified: bool = False
    issued_links: tuple[str, ...] = ()
    single_use_links: tuple[str, ...] = ()
    used_links: tuple[str, ...] = ()

    @property
    def quantity(self) -> int:
        """How many keys the order buys."""
        return sum(item.quantity for item in self.items)

    @property
    def supplier_reference(self) -> str:
        """The ``orderExternalId`` of the current purchase attempt (the order id, then
        ``<order id>.<attempt>`` after an admin retry that buys again)."""
        if self.purchase_attempt == 0:
            return str(self.id)
        return f"{self.id}.{self.purchase_attempt}"


def order_id_from_reference(reference: str) -> UUID | None:
    """The order id inside a supplier ``orderExternalId``, if there is one."""
    try:
        return UUID(reference[:36])
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# Folding events into state


def fold(events: Iterable[DomainEvent]) -> Order:
    """Rebuild an order from its events, oldest first."""
    order: Order | None = None
    for event in events:
        order = apply(order, event)
    if order is None:
        raise OrderNotFound("no events")
    return order


def apply(order: Order | None, event: DomainEvent) -> Order:
    """Return the state after ``event``."""
    if isinstance(event, OrderPlaced):
        return _placed(event)
    if order is None:
        raise OrderNotFound(f"event {type(event).__name__} before OrderPlaced")
    changes = _changes(order, event)
    return msgspec.structs.replace(
        order, version=event.originator_version, updated_at=event.timestamp, **changes
    )


def _placed(event: OrderPlaced) -> Order:
    return Order(
        id=event.originator_id,
        version=event.originator_version,
        owner=event.owner,
        email=event.email,
        email_sealed=event.email_sealed,
        currency=event.currency,
        items=event.items,
        total=event.total,
        status=Status.CREATED,
        placed_at=event.timestamp,
        updated_at=event.timestamp,
    )


def _changes(order: Order, event: DomainEvent) -> dict[str, Any]:  # noqa: PLR0911, PLR0912 - a case per event
    match event:
        case PaymentInvoiceCreated():
            return {
                "status": Status.PENDING_PAYMENT,
                "invoice_id": event.invoice_id,
                "invoice_url": event.invoice_url,
            }
        case OrderPaid():
            return {"status": Status.PAID, "payment_id": event.payment_id}
        case PaymentUnderpaid():
            return {"status": Status.UNDERPAID, "payment_id": event.payment_id}
        case PaymentFailed():
            return {"status": Status.PAYMENT_FAILED, "failure_reason": event.reason}
        case KeysReserved():
            return {"status": Status.RESERVED, "supplier_order_id": event.supplier_order_id}
        case SupplierOrderStatusChanged():
            return {
                "supplier_order_id": event.supplier_order_id,
                "supplier_status": event.status,
                "supplier_updated_at": event.updated_at,
            }
        case SupplierOrderFailed() | FulfillmentFailed():
            return {"status": Status.FULFILLMENT_FAILED, "failure_reason": event.reason}
        case KeyDelivered():
            return {"keys": (*order.keys, _delivered_key(event))}
        case OrderFulfilled():
            return {"status": Status.FULFILLED}
        case PaymentFlagged():
            return {"flags": (*order.flags, event.reason)}
        case FulfillmentRetried():
            return _retried(order, Status(event.resume_from))
        case KeysShredded():
            return {"shredded": True}
        case DownloadLinkIssued():
            return _link_issued(order, event)
        case CustomerNotified():
            return {"notified": True}
        case KeysRevealed(link_id=str()):
            return {"used_links": (*order.used_links, event.link_id)}
    return {}


def _retried(order: Order, resume: Status) -> dict[str, Any]:
    """Resume where the order failed. A purchase Kinguin canceled or refunded is bought again
    under a new reference; otherwise the same reference is reused, so a purchase that did go
    through before the failure is found again rather than bought twice."""
    if resume is Status.RESERVED:
        return {"status": resume, "failure_reason": None}
    changes: dict[str, Any] = {
        "status": resume,
        "failure_reason": None,
        "supplier_order_id": None,
        "supplier_status": None,
        "supplier_updated_at": None,
    }
    if order.supplier_status in SUPPLIER_FAILURE_STATUSES:
        changes["purchase_attempt"] = order.purchase_attempt + 1
    return changes


def _link_issued(order: Order, event: DownloadLinkIssued) -> dict[str, Any]:
    changes: dict[str, Any] = {"issued_links": (*order.issued_links, event.link_id)}
    if event.single_use:
        changes["single_use_links"] = (*order.single_use_links, event.link_id)
    return changes


def _delivered_key(event: KeyDelivered) -> DeliveredKey:
    return DeliveredKey(
        key_id=event.key_id,
        product_id=event.product_id,
        vault_ref=event.vault_ref,
        fingerprint=event.fingerprint,
        content_type=event.content_type,
    )


# ---------------------------------------------------------------------------------------------
# Decisions

E = TypeVar("E", bound=DomainEvent)


class _Stamper:
    """Gives each new event of one decision the next version of the order."""

    def __init__(self, order_id: UUID, version: int, now: datetime) -> None:
        self._id = order_id
        self._next = version + 1
        self._now = now

    def __call__(self, cls: type[E], **fields: Any) -> E:
        event = cls(
            originator_id=self._id, originator_version=self._next, timestamp=self._now, **fields
        )
        self._next += 1
        return event


def place(
    order_id: UUID,
    *,
    owner: str,
    email: str,
    currency: str,
    items: Sequence[LineItem],
    now: datetime,
    sealed_email: str | None = None,
) -> list[DomainEvent]:
    """Accept a new order after checking its content; with ``sealed_email`` the event keeps
    only the sealed address."""
    check_order_content(email, currency, items)
    total = sum((item.unit_price * item.quantity for item in items), Decimal(0))
    stamp = _Stamper(order_id, 0, now)
    placed = stamp(
        OrderPlaced,
        owner=owner,
        email="" if sealed_email else email,
        email_sealed=sealed_email,
        currency=currency.lower(),
        items=tuple(items),
        total=total,
    )
    return [placed]


def check_order_content(email: str, currency: str, items: Sequence[LineItem]) -> None:
    """Refuse an order whose e-mail, currency or items break the rules."""
    if not _EMAIL.match(email):
        raise InvalidOrder("email is not an e-mail address")
    if not _CURRENCY.match(currency):
        raise InvalidOrder("currency must be a currency code such as 'usd'")
    if not items or len(items) > MAX_LINES:
        raise InvalidOrder(f"an order has between 1 and {MAX_LINES} items")
    for item in items:
        if not item.product_id.strip():
            raise InvalidOrder("product_id must not be empty")
        if not 1 <= item.quantity <= MAX_QUANTITY_PER_LINE:
            raise InvalidOrder(f"quantity must be between 1 and {MAX_QUANTITY_PER_LINE}")
        price = item.unit_price
        if not price.is_finite() or not 0 < price <= MAX_UNIT_PRICE:
            raise InvalidOrder(f"unit_price must be a positive amount up to {MAX_UNIT_PRICE}")
        if price.as_tuple().exponent < -MAX_PRICE_DECIMALS:  # type: ignore[operator]
            raise InvalidOrder(f"unit_price has at most {MAX_PRICE_DECIMALS} decimal places")


def invoice_created(
    order: Order, *, invoice_id: str, invoice_url: str, now: datetime
) -> list[DomainEvent]:
    """Record the NOWPayments invoice; only an order still awaiting payment takes one."""
    if order.status not in AWAITING_PAYMENT:
        raise TransitionRefused(f"order is {order.status}; it takes no new invoice")
    stamp = _Stamper(order.id, order.version, now)
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
    stamp = _Stamper(order.id, order.version, now)
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


def _payment_transition(order: Order, notice: PaymentNotice, stamp: _Stamper) -> list[DomainEvent]:
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


def reserved(order: Order, *, supplier_order_id: str, now: datetime) -> list[DomainEvent]:
    """Record Kinguin's acceptance of the purchase; only a paid order is reserved, once."""
    if order.status is not Status.PAID:
        return []
    return [
        _Stamper(order.id, order.version, now)(KeysReserved, supplier_order_id=supplier_order_id)
    ]


def supplier_failed(order: Order, *, reason: str, now: datetime) -> list[DomainEvent]:
    """Record that Kinguin refused the purchase: the order needs an admin."""
    if order.status not in (Status.PAID, Status.RESERVED):
        return []
    stamp = _Stamper(order.id, order.version, now)
    return [stamp(SupplierOrderFailed, reason=reason), stamp(FulfillmentFailed, reason=reason)]


def gave_up(order: Order, *, reason: str, now: datetime) -> list[DomainEvent]:
    """Background work failed past its retries: the order needs an admin."""
    if order.status not in (Status.PAID, Status.RESERVED):
        return []
    return [_Stamper(order.id, order.version, now)(FulfillmentFailed, reason=reason)]


def retried(order: Order, *, by: str, now: datetime) -> list[DomainEvent]:
    """An admin sends a failed order back: to be bought again, or delivered if already bought."""
    if order.status is not Status.FULFILLMENT_FAILED:
        raise TransitionRefused(
            f"order is {order.status}; only fulfillment_failed orders are retried"
        )
    usable = order.supplier_order_id and order.supplier_status not in SUPPLIER_FAILURE_STATUSES
    resume = Status.RESERVED if usable else Status.PAID
    return [
        _Stamper(order.id, order.version, now)(FulfillmentRetried, by=by, resume_from=resume.value)
    ]


class SupplierNotice(msgspec.Struct, frozen=True, kw_only=True):
    """What a verified Kinguin ``order.status`` webhook says."""

    supplier_order_id: str
    status: str
    updated_at: str
    external_id: str | None = None


def supplier_notified(order: Order, notice: SupplierNotice, now: datetime) -> list[DomainEvent]:
    """Record a Kinguin status webhook; a stale or foreign one is an audit line only."""
    stamp = _Stamper(order.id, order.version, now)
    events: list[DomainEvent] = [
        stamp(
            WebhookReceived,
            provider="kinguin",
            event_id=f"{notice.supplier_order_id}:{notice.status}:{notice.updated_at}",
            verified=True,
            summary=f"supplier order {notice.supplier_order_id} {notice.status}",
        )
    ]
    events.extend(_supplier_change(order, notice, stamp))
    return events


def supplier_polled(order: Order, notice: SupplierNotice, now: datetime) -> list[DomainEvent]:
    """Record what polling Kinguin said, when it is news."""
    if notice.status == order.supplier_status:
        return []
    return _supplier_change(order, notice, _Stamper(order.id, order.version, now))


def _supplier_change(order: Order, notice: SupplierNotice, stamp: _Stamper) -> list[DomainEvent]:
    if not _is_current(order, notice):
        return []
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
    if notice.external_id not in (None, order.supplier_reference):
        return False  # a purchase of an earlier attempt
    if order.status not in (Status.PAID, Status.RESERVED):
        return False
    return order.supplier_updated_at is None or notice.updated_at > order.supplier_updated_at


def keys_delivered(
    order: Order, receipts: Sequence[DeliveredKey], now: datetime
) -> list[DomainEvent]:
    """Record every delivered key and the fulfilment; only a reserved order, with all its keys."""
    if order.status is not Status.RESERVED:
        return []
    if len(receipts) != order.quantity:
        raise TransitionRefused(f"expected {order.quantity} keys, got {len(receipts)}")
    stamp = _Stamper(order.id, order.version, now)
    events: list[DomainEvent] = [
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
    stamp = _Stamper(order.id, order.version, now)
    revealed_event = stamp(
        KeysRevealed, who=who, ip=ip, user_agent=user_agent[:256], how=how, link_id=link_id
    )
    return [revealed_event]


def link_issued(
    order: Order, *, link_id: str, expires_at: datetime, single_use: bool, now: datetime
) -> list[DomainEvent]:
    """Record a download link handed to the owner."""
    _check_readable(order)
    issued = _Stamper(order.id, order.version, now)(
        DownloadLinkIssued, expires_at=expires_at, link_id=link_id, single_use=single_use
    )
    return [issued]


def notified(order: Order, *, channel: str, message_id: str, now: datetime) -> list[DomainEvent]:
    """Record the one notification of a fulfilled order."""
    if order.notified or order.status is not Status.FULFILLED:
        return []
    event = _Stamper(order.id, order.version, now)(
        CustomerNotified, channel=channel, message_id=message_id
    )
    return [event]


def shredded(order: Order, *, who: str, now: datetime) -> list[DomainEvent]:
    """Record that the order's data key was destroyed; not while keys may still arrive."""
    if order.shredded:
        return []
    if order.status in (Status.PAID, Status.RESERVED):
        raise TransitionRefused(f"order is {order.status}; its keys are still on their way")
    return [_Stamper(order.id, order.version, now)(KeysShredded, who=who)]


def _check_readable(order: Order) -> None:
    if order.shredded:
        raise KeysGone(f"order {order.id}: its keys were destroyed")
    if order.status is not Status.FULFILLED:
        raise TransitionRefused(f"order is {order.status}; it has no keys to read")
