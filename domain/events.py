"""Events: frozen, keyword-only msgspec structs, past tense, never renamed once stored.

Every event names its aggregate (``originator_id``), its position in that aggregate's sequence
(``originator_version``, from 1) and when it happened (``timestamp``, UTC). No event carries a
plaintext key: ``KeyDelivered`` holds a vault reference and a SHA-256 fingerprint only.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

import msgspec


class DomainEvent(msgspec.Struct, frozen=True, kw_only=True):
    """What every stored event carries."""

    originator_id: UUID
    originator_version: int
    timestamp: datetime


class LineItem(msgspec.Struct, frozen=True, kw_only=True):
    """One line of an order: a product, how many, at what unit price."""

    product_id: str
    quantity: int
    unit_price: Decimal
    offer_id: str | None = None


class OrderPlaced(DomainEvent, frozen=True, kw_only=True):
    """A customer placed an order. The e-mail address is kept sealed under the customer's own
    key (``email_sealed``), so erasing the customer erases it; ``email`` stays empty."""

    owner: str
    email: str
    currency: str
    items: tuple[LineItem, ...]
    total: Decimal
    email_sealed: str | None = None


class PaymentInvoiceCreated(DomainEvent, frozen=True, kw_only=True):
    """NOWPayments created an invoice for the order."""

    invoice_id: str
    invoice_url: str
    price_amount: Decimal
    price_currency: str


class PaymentStatusChanged(DomainEvent, frozen=True, kw_only=True):
    """NOWPayments reported a payment status (an audit line; may change nothing else)."""

    payment_id: str
    payment_status: str
    actually_paid: str | None = None
    pay_currency: str | None = None
    parent_payment_id: str | None = None


class PaymentFlagged(DomainEvent, frozen=True, kw_only=True):
    """A payment notice did not match the order (invoice, amount, currency, re-deposit): an
    admin must look; the order is not fulfilled on its strength."""

    payment_id: str
    reason: str


class OrderPaid(DomainEvent, frozen=True, kw_only=True):
    """The payment finished: the order may be fulfilled."""

    payment_id: str


class PaymentUnderpaid(DomainEvent, frozen=True, kw_only=True):
    """The customer paid less than the price; the order is not fulfilled."""

    payment_id: str
    actually_paid: str | None = None


class PaymentFailed(DomainEvent, frozen=True, kw_only=True):
    """The payment failed, expired or was refunded."""

    payment_id: str
    reason: str


class KeysReserved(DomainEvent, frozen=True, kw_only=True):
    """Kinguin accepted the purchase; its order id is recorded."""

    supplier_order_id: str


class SupplierOrderStatusChanged(DomainEvent, frozen=True, kw_only=True):
    """Kinguin reported a new status for the purchase (``processing``, ``completed``, ...)."""

    supplier_order_id: str
    status: str
    updated_at: str


class SupplierOrderFailed(DomainEvent, frozen=True, kw_only=True):
    """Kinguin refused or could not complete the purchase."""

    reason: str


class KeyDelivered(DomainEvent, frozen=True, kw_only=True):
    """One key arrived, was encrypted and stored; the event holds its reference, never the key."""

    key_id: str
    product_id: str
    vault_ref: str
    fingerprint: str
    content_type: str


class OrderFulfilled(DomainEvent, frozen=True, kw_only=True):
    """Every key of the order is in the vault."""

    key_count: int


class FulfillmentFailed(DomainEvent, frozen=True, kw_only=True):
    """The order cannot be fulfilled without an admin (refund or retry)."""

    reason: str


class FulfillmentRetried(DomainEvent, frozen=True, kw_only=True):
    """An admin sent a failed order back to be bought or delivered again."""

    by: str
    resume_from: str


class CustomerNotified(DomainEvent, frozen=True, kw_only=True):
    """The customer was told the keys are ready (one e-mail per order, with a link)."""

    channel: str
    message_id: str


class DownloadLinkIssued(DomainEvent, frozen=True, kw_only=True):
    """A short-lived download link was handed to the owner."""

    expires_at: datetime
    link_id: str = ""
    single_use: bool = False


class KeysRevealed(DomainEvent, frozen=True, kw_only=True):
    """Someone read the order's keys."""

    who: str
    ip: str
    user_agent: str
    how: str
    link_id: str | None = None


class KeysShredded(DomainEvent, frozen=True, kw_only=True):
    """The order's data key was destroyed; its keys can never be read again."""

    who: str


class WebhookReceived(DomainEvent, frozen=True, kw_only=True):
    """A provider's notification concerning the order arrived (verified, deduplicated)."""

    provider: str
    event_id: str
    verified: bool
    summary: str


class CustomerErased(DomainEvent, frozen=True, kw_only=True):
    """A customer's personal-data key was destroyed; their orders keep a readable history
    without their e-mail address. (On the customer's own aggregate.)"""

    customer: str
    who: str


class WebhookDeliveryRecorded(DomainEvent, frozen=True, kw_only=True):
    """A webhook delivery, stored once under a deterministic id (uuid5 of its natural key)."""

    provider: str
    natural_key: str
    event_name: str
    order_id: str | None
    verified: bool
    body: str
    outcome: str
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    """The headers that matter (event name, signature); never a shared secret."""


ORDER_EVENTS: tuple[type[DomainEvent], ...] = (
    OrderPlaced,
    PaymentInvoiceCreated,
    PaymentStatusChanged,
    PaymentFlagged,
    OrderPaid,
    PaymentUnderpaid,
    PaymentFailed,
    KeysReserved,
    SupplierOrderStatusChanged,
    SupplierOrderFailed,
    KeyDelivered,
    OrderFulfilled,
    FulfillmentFailed,
    FulfillmentRetried,
    CustomerNotified,
    DownloadLinkIssued,
    KeysRevealed,
    KeysShredded,
    WebhookReceived,
)
ALL_EVENTS: tuple[type[DomainEvent], ...] = (*ORDER_EVENTS, WebhookDeliveryRecorded, CustomerErased)
