"""Events: frozen, keyword-only msgspec structs, past tense, never renamed once stored (their
stored names and versions are registered in ``domain.event_types``).

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
    """One line of an order: a product, how many, at what unit price (the shop's sale price).

    Lines priced from the catalog also record the product's name and catalog version, the
    supplier cost the price was based on (``priced_cost``), and the cap the purchase may not
    exceed (``cost_cap``); lines of orders placed before the catalog existed have none of these,
    and lines stored before ``OrderPlaced`` version 2 have no name (``domain.event_types``).
    """

    product_id: str
    quantity: int
    unit_price: Decimal
    offer_id: str | None = None
    name: str | None = None
    catalog_version: int | None = None
    priced_cost: Decimal | None = None
    cost_cap: Decimal | None = None
    preorder: bool = False


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
    pay_amount: str | None = None
    """What the invoice asked in ``pay_currency``; ``actually_paid`` is what arrived."""
    actually_paid_at_fiat: str | None = None
    outcome_amount: str | None = None
    outcome_currency: str | None = None


class PaymentFlagged(DomainEvent, frozen=True, kw_only=True):
    """A payment notice did not match the order (invoice, amount, currency, re-deposit): an
    admin must look; the order is not fulfilled on its strength."""

    payment_id: str
    reason: str


class OrderPaid(DomainEvent, frozen=True, kw_only=True):
    """The payment finished: the order may be fulfilled."""

    payment_id: str
    amount_received: Decimal | None = None
    """What the payment brought, in the order's currency at the invoice's rate (None in events
    recorded before amounts were checked)."""


class PaymentUnderpaid(DomainEvent, frozen=True, kw_only=True):
    """The customer paid less than the price; the order is not fulfilled."""

    payment_id: str
    actually_paid: str | None = None
    amount_received: Decimal | None = None
    """``actually_paid`` in the order's currency at the invoice's rate (see ``OrderPaid``)."""


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


class AttemptFailed(DomainEvent, frozen=True, kw_only=True):
    """A background step (``reserve`` or ``deliver``) failed in a way retrying may fix. The
    order keeps the count: ``attempt`` of the step's budget, and when to try again
    (``retry_at``; None when the budget is spent and the order fails)."""

    step: str
    attempt: int
    error: str
    retry_at: datetime | None


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


class SupplierPriceChanged(DomainEvent, frozen=True, kw_only=True):
    """Kinguin no longer sells a line at or below its cost cap: the price moved."""

    product_id: str
    cost_cap: Decimal
    current_cost: Decimal | None


class CostCapRaised(DomainEvent, frozen=True, kw_only=True):
    """An admin accepted the supplier's new cost for a line; ``margin`` is what the line now
    leaves per key (sale price minus the new cost; negative means a loss)."""

    by: str
    product_id: str
    old_cap: Decimal
    new_cap: Decimal
    margin: Decimal


class PurchaseHeld(DomainEvent, frozen=True, kw_only=True):
    """The purchase waits: the supplier balance does not cover it. Not a failure; it resumes
    once the balance is topped up."""

    reason: str
    needed: Decimal
    balance: Decimal | None


class RefundRequested(DomainEvent, frozen=True, kw_only=True):
    """An admin asked for the customer's payment to be refunded."""

    by: str
    reason: str
    amount: Decimal
    currency: str


class OrderRefunded(DomainEvent, frozen=True, kw_only=True):
    """The customer's payment was refunded (terminal)."""

    reference: str
    amount: Decimal


class KeyReturnStarted(DomainEvent, frozen=True, kw_only=True):
    """An admin is returning the order's unrevealed keys to Kinguin; reads stop meanwhile."""

    by: str


class KeyReturnRefused(DomainEvent, frozen=True, kw_only=True):
    """Kinguin refused the key return; the keys stay the customer's."""

    reason: str


class KeysReturned(DomainEvent, frozen=True, kw_only=True):
    """Kinguin took the keys back (and credited the shop's balance)."""

    by: str
    key_ids: tuple[str, ...]


class PaymentFlagsResolved(DomainEvent, frozen=True, kw_only=True):
    """An admin settled the order's payment flags (``note`` says how: money sent back, amount
    accepted…); the flags named are cleared."""

    by: str
    note: str
    flags: tuple[str, ...]


class PurchaseResumed(DomainEvent, frozen=True, kw_only=True):
    """An admin had a held purchase tried again now (after topping up the supplier balance)."""

    by: str


class KeyReturnAbandoned(DomainEvent, frozen=True, kw_only=True):
    """An admin gave up a key return that never finished; the keys stay the customer's."""

    by: str
    reason: str


class DeliveryEmailResent(DomainEvent, frozen=True, kw_only=True):
    """An admin sent the delivery e-mail again, with a fresh link."""

    by: str
    message_id: str


# --- the catalog --------------------------------------------------------------------------------


class SupplierProduct(msgspec.Struct, frozen=True, kw_only=True):
    """What Kinguin says of a product: names, stock (``qty`` of the cheapest offers,
    ``text_qty`` of text keys), its cheapest offer and that offer's price in EUR (``cost``),
    and the pre-order release date."""

    product_id: str
    kinguin_id: int
    name: str
    platform: str
    region: str
    qty: int
    text_qty: int
    cost: Decimal
    cheapest_offer_ids: tuple[str, ...] = ()
    is_preorder: bool = False
    release_date: str | None = None
    supplier_updated_at: str = ""


class ProductImported(DomainEvent, frozen=True, kw_only=True):
    """A Kinguin product entered the catalog."""

    supplier: SupplierProduct


class ProductUpdated(DomainEvent, frozen=True, kw_only=True):
    """Kinguin's facts about a product changed (stock, cheapest offer, cost, release date)."""

    supplier: SupplierProduct


class ProductPriced(DomainEvent, frozen=True, kw_only=True):
    """The shop set the product's sale price (EUR) by ``rule`` from the supplier ``cost``."""

    sale_price: Decimal
    currency: str
    rule: str
    cost: Decimal


class ProductUnpriced(DomainEvent, frozen=True, kw_only=True):
    """The product is not for sale at any price the rules allow (margin below the minimum)."""

    reason: str
    cost: Decimal


class ProductWithdrawn(DomainEvent, frozen=True, kw_only=True):
    """The product left the catalog (Kinguin no longer offers it)."""

    reason: str


class PricingRulesSet(DomainEvent, frozen=True, kw_only=True):
    """An admin set the margin rules (on the pricing aggregate)."""

    by: str
    margin_percent: Decimal
    minimum_margin: Decimal
    rounding: str | None
    overrides: dict[str, Decimal] = msgspec.field(default_factory=dict)


class CatalogSynced(DomainEvent, frozen=True, kw_only=True):
    """A sync with Kinguin's catalog finished (on the sync aggregate)."""

    mode: str
    started_at: datetime
    seen: int
    changed: int


# --- the supplier account -----------------------------------------------------------------------


class SupplierBalanceObserved(DomainEvent, frozen=True, kw_only=True):
    """The shop's Kinguin balance as Kinguin reported it (on the supplier account's aggregate):
    read every few minutes, so that the dashboard can draw its trend from the log."""

    balance: Decimal
    currency: str = "eur"  # the shop's currency, as orders write it (Kinguin accounts in EUR)


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
    AttemptFailed,
    CustomerNotified,
    DownloadLinkIssued,
    KeysRevealed,
    KeysShredded,
    WebhookReceived,
    SupplierPriceChanged,
    CostCapRaised,
    PurchaseHeld,
    RefundRequested,
    OrderRefunded,
    KeyReturnStarted,
    KeyReturnRefused,
    KeysReturned,
    PaymentFlagsResolved,
    PurchaseResumed,
    KeyReturnAbandoned,
    DeliveryEmailResent,
)
PRODUCT_EVENTS: tuple[type[DomainEvent], ...] = (
    ProductImported,
    ProductUpdated,
    ProductPriced,
    ProductUnpriced,
    ProductWithdrawn,
)
CATALOG_EVENTS: tuple[type[DomainEvent], ...] = (*PRODUCT_EVENTS, PricingRulesSet, CatalogSynced)
ALL_EVENTS: tuple[type[DomainEvent], ...] = (
    *ORDER_EVENTS,
    WebhookDeliveryRecorded,
    CustomerErased,
    *CATALOG_EVENTS,
    SupplierBalanceObserved,
)
