"""The order aggregate: its state, how each event changes it, and placing an order.

Decisions are pure functions ``(order, now, ...) -> list[DomainEvent]`` that never perform I/O;
besides ``place`` here, they live in ``payments`` (invoice, IPNs), ``supply`` (Kinguin, keys,
failures and retries) and ``access`` (reveal, links, notification, shredding). A status never
moves backwards: a late or duplicate notification becomes an audit line and changes nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar
from uuid import UUID

import msgspec

from domain.errors import InvalidOrder, OrderNotFound
from domain.events import (
    AttemptFailed,
    CostCapRaised,
    CustomerNotified,
    DomainEvent,
    DownloadLinkIssued,
    FulfillmentFailed,
    FulfillmentRetried,
    KeyDelivered,
    KeyReturnAbandoned,
    KeyReturnRefused,
    KeyReturnStarted,
    KeysReserved,
    KeysReturned,
    KeysRevealed,
    KeysShredded,
    LineItem,
    OrderFulfilled,
    OrderPaid,
    OrderPlaced,
    OrderRefunded,
    PaymentFailed,
    PaymentFlagged,
    PaymentFlagsResolved,
    PaymentInvoiceCreated,
    PaymentUnderpaid,
    PurchaseHeld,
    PurchaseResumed,
    SupplierOrderFailed,
    SupplierOrderStatusChanged,
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
    REFUNDED = "refunded"


AWAITING_PAYMENT = frozenset({Status.CREATED, Status.PENDING_PAYMENT})
PAYMENT_PENDING_STATUSES = frozenset({"waiting", "confirming", "confirmed", "sending"})
PAYMENT_FAILURE_STATUSES = frozenset({"failed", "expired", "refunded"})
SUPPLIER_FAILURE_STATUSES = frozenset({"canceled", "refunded"})
MAX_QUANTITY_PER_LINE = 9  # Kinguin sells at most 9 keys of one offer per order
MAX_LINES = 10  # and at most 10 products per order
MAX_UNIT_PRICE = Decimal(100_000)
MAX_PRICE_DECIMALS = 8
# The character classes are written out rather than as ``\s``: the same text is the pattern the
# OpenAPI document states (entrypoints/http/views.py), where ``\s`` means a different set.
# Python's white space (what ``str.strip`` removes):
_SPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# An e-mail address: something@something.something, without "@", white space (Python's or
# ECMAScript's) or control characters in the parts.
_EMAIL_PART = r"[^@\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]+"
EMAIL_PATTERN = rf"^{_EMAIL_PART}@{_EMAIL_PART}\.{_EMAIL_PART}$"
NOT_BLANK_PATTERN = rf"[^{_SPACE}]"  # found anywhere: the text is not only white space
_EMAIL = re.compile(EMAIL_PATTERN)
_NOT_BLANK = re.compile(NOT_BLANK_PATTERN)
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
    amount_paid: Decimal | None = None
    """What the payment brought, in the order's currency (None until paid or underpaid, and for
    orders paid before amounts were recorded)."""
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
    held: str | None = None
    """Why the purchase waits (e.g. the supplier balance is too low), while it does."""
    revealed: bool = False
    fulfilled_at: datetime | None = None
    returning: bool = False
    returned: bool = False
    refund_reference: str | None = None
    attempts: int = 0
    """Failed attempts of the current background step (reset when the order moves on)."""
    retry_at: datetime | None = None

    @property
    def is_preorder(self) -> bool:
        """A pre-order: its keys come after the product's release."""
        return any(item.preorder for item in self.items)

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
            return {"status": Status.PAID, "payment_id": event.payment_id,
                    "amount_paid": event.amount_received}  # fmt: skip
        case PaymentUnderpaid():
            return {"status": Status.UNDERPAID, "payment_id": event.payment_id,
                    "amount_paid": event.amount_received}  # fmt: skip
        case PaymentFailed():
            return {"status": Status.PAYMENT_FAILED, "failure_reason": event.reason}
        case KeysReserved():
            return {
                "status": Status.RESERVED,
                "supplier_order_id": event.supplier_order_id,
                "held": None,
                "attempts": 0,
                "retry_at": None,
            }
        case SupplierOrderStatusChanged():
            return {
                "supplier_order_id": event.supplier_order_id,
                "supplier_status": event.status,
                "supplier_updated_at": event.updated_at,
            }
        case SupplierOrderFailed() | FulfillmentFailed():
            return {
                "status": Status.FULFILLMENT_FAILED,
                "failure_reason": event.reason,
                "held": None,
            }
        case KeyDelivered():
            return {"keys": (*order.keys, _delivered_key(event))}
        case OrderFulfilled():
            return {"status": Status.FULFILLED, "fulfilled_at": event.timestamp}
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
            return {"used_links": (*order.used_links, event.link_id), "revealed": True}
        case KeysRevealed():
            return {"revealed": True}
    return _refund_changes(order, event)


def _refund_changes(order: Order, event: DomainEvent) -> dict[str, Any]:  # noqa: PLR0911 - a case per event
    """Failed attempts, holds, new cost caps, key returns and refunds."""
    match event:
        case AttemptFailed():
            return {"attempts": event.attempt, "retry_at": event.retry_at}
        case PurchaseHeld():
            return {"held": event.reason}
        case CostCapRaised():
            return {"items": _with_cap(order.items, event.product_id, event.new_cap)}
        case KeyReturnStarted():
            return {"returning": True}
        case KeyReturnRefused() | KeyReturnAbandoned():
            return {"returning": False}
        case PaymentFlagsResolved():
            return {"flags": tuple(f for f in order.flags if f not in event.flags)}
        case PurchaseResumed():
            return {"held": None}
        case KeysReturned():
            return {"returning": False, "returned": True}
        case OrderRefunded():
            return {"status": Status.REFUNDED, "held": None, "refund_reference": event.reference}
    return {}


def _with_cap(items: tuple[LineItem, ...], product_id: str, cap: Decimal) -> tuple[LineItem, ...]:
    return tuple(
        msgspec.structs.replace(item, cost_cap=cap) if item.product_id == product_id else item
        for item in items
    )


def _retried(order: Order, resume: Status) -> dict[str, Any]:
    """Resume where the order failed. A purchase Kinguin canceled or refunded is bought again
    under a new reference; otherwise the same reference is reused, so a purchase that did go
    through before the failure is found again rather than bought twice."""
    if resume is Status.RESERVED:
        return {"status": resume, "failure_reason": None, "attempts": 0, "retry_at": None}
    changes: dict[str, Any] = {
        "status": resume,
        "failure_reason": None,
        "attempts": 0,
        "retry_at": None,
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


class Stamper:
    """Gives each new event of one decision the next version of its aggregate (an order, or a
    catalog product; used by every decision module of the domain)."""

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
    seal: Callable[[str], str] | None = None,
) -> list[DomainEvent]:
    """Accept a new order after checking its content; with ``seal`` the event keeps only the
    sealed address (sealed once the content is known to be valid)."""
    check_order_content(email, currency, items)
    sealed_email = seal(email) if seal else None
    total = sum((item.unit_price * item.quantity for item in items), Decimal(0))
    stamp = Stamper(order_id, 0, now)
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
    if not _EMAIL.fullmatch(email):
        raise InvalidOrder("email is not an e-mail address")
    if not _CURRENCY.match(currency):
        raise InvalidOrder("currency must be a currency code such as 'usd'")
    if not items or len(items) > MAX_LINES:
        raise InvalidOrder(f"an order has between 1 and {MAX_LINES} items")
    for item in items:
        if not _NOT_BLANK.search(item.product_id):
            raise InvalidOrder("product_id must not be empty")
        if not 1 <= item.quantity <= MAX_QUANTITY_PER_LINE:
            raise InvalidOrder(f"quantity must be between 1 and {MAX_QUANTITY_PER_LINE}")
        price = item.unit_price
        if not price.is_finite() or not 0 < price <= MAX_UNIT_PRICE:
            raise InvalidOrder(f"unit_price must be a positive amount up to {MAX_UNIT_PRICE}")
        if price.as_tuple().exponent < -MAX_PRICE_DECIMALS:  # type: ignore[operator]
            raise InvalidOrder(f"unit_price has at most {MAX_PRICE_DECIMALS} decimal places")
