"""Failure codes: what a customer is told about a failed order, from a small documented set.

The full reason (Kinguin's error text, the last error of a retried step) is for staff only; a
customer sees one of ``FAILURE_CODES`` instead. The code is derived from the order's status and
reason, not stored, so orders failed before the codes existed get one too.
"""

from __future__ import annotations

from domain.order import Order, Status

SUPPLIER_UNAVAILABLE = "supplier_unavailable"
OUT_OF_STOCK = "out_of_stock"
PRICE_CHANGED = "price_changed"
SUPPLIER_REFUSED = "supplier_refused"
SUPPLIER_CANCELED = "supplier_canceled"
PAYMENT_FAILED = "payment_failed"
PAYMENT_EXPIRED = "payment_expired"
PAYMENT_REFUNDED = "payment_refunded"
UNDERPAID = "underpaid"
PAYMENT_MISMATCH = "payment_mismatch"

FAILURE_CODES: dict[str, str] = {
    SUPPLIER_UNAVAILABLE: "the supplier could not be reached in time; staff will retry or refund",
    OUT_OF_STOCK: "the supplier has no stock of a product in the order",
    PRICE_CHANGED: "the supplier's price moved; staff will decide on the new price or refund",
    SUPPLIER_REFUSED: "the supplier refused the purchase",
    SUPPLIER_CANCELED: "the supplier canceled or refunded the purchase",
    PAYMENT_FAILED: "the payment failed",
    PAYMENT_EXPIRED: "the invoice expired before it was paid",
    PAYMENT_REFUNDED: "the payment was refunded by the payment provider",
    UNDERPAID: "less than the total was paid",
    PAYMENT_MISMATCH: "a payment arrived that does not match the order; staff will look at it",
}
"""Every code a customer may see, with what it means (docs/api.md lists the same)."""

_PAYMENT_REASONS = {
    "failed": PAYMENT_FAILED,
    "expired": PAYMENT_EXPIRED,
    "refunded": PAYMENT_REFUNDED,
}
# Prefixes of the staff reasons the domain and the application write (domain.supply,
# application.fulfillment): a step that spent its retries, a purchase Kinguin lost, a price
# that moved, a status webhook that canceled the purchase, and Kinguin's refusal kinds.
_SUPPLIER_REASONS = (
    ("supplier_price_changed", PRICE_CHANGED),
    ("supplier order ", SUPPLIER_CANCELED),
    ("ProductUnavailable", OUT_OF_STOCK),
    ("reserve failed", SUPPLIER_UNAVAILABLE),
    ("deliver failed", SUPPLIER_UNAVAILABLE),
    ("reserve gave up", SUPPLIER_UNAVAILABLE),
    ("deliver gave up", SUPPLIER_UNAVAILABLE),
)


def failure_code(order: Order) -> str | None:
    """The customer-facing code of an order that failed, or waits on a payment that did not
    match it; None for an order that is fine."""
    if order.status is Status.PAYMENT_FAILED:
        return payment_code(order.failure_reason or "")
    if order.status is Status.FULFILLMENT_FAILED:
        return supplier_code(order.failure_reason or "")
    if order.status is Status.UNDERPAID:
        return UNDERPAID
    if order.flags and order.status in (Status.CREATED, Status.PENDING_PAYMENT):
        return PAYMENT_MISMATCH
    return None


def payment_code(reason: str) -> str:
    """The code of a failed payment's reason (NOWPayments' status: failed, expired, refunded)."""
    return _PAYMENT_REASONS.get(reason, PAYMENT_FAILED)


def supplier_code(reason: str) -> str:
    """The code of a fulfilment failure's staff reason."""
    for prefix, code in _SUPPLIER_REASONS:
        if reason.startswith(prefix):
            return code
    return SUPPLIER_REFUSED
