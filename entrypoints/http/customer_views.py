"""What an order's owner may read of its history: an allow-list of fields per event type.

Anything not listed here is staff-only (supplier order ids and error text, costs and caps, staff
names, vault references, raw provider ids), and so is every field of an event type not listed
(a new event type is hidden from customers until it is added here). Failures are shown as a
``failure_code`` from ``domain.failures.FAILURE_CODES``, never as their reason.
"""

from __future__ import annotations

from typing import Any

from domain.failures import PAYMENT_MISMATCH, payment_code, supplier_code

_LINE_FIELDS = ("product_id", "offer_id", "quantity", "unit_price")
_CUSTOMER_FIELDS: dict[str, tuple[str, ...]] = {
    "OrderPlaced": ("owner", "currency", "items", "total"),
    "PaymentInvoiceCreated": ("invoice_id", "invoice_url", "price_amount", "price_currency"),
    "PaymentStatusChanged": ("payment_id", "payment_status", "actually_paid", "pay_currency"),
    "PaymentFlagged": ("payment_id",),
    "OrderPaid": ("payment_id", "amount_received"),
    "PaymentUnderpaid": ("payment_id", "actually_paid", "amount_received"),
    "PaymentFailed": ("payment_id",),
    "KeysReserved": (),
    "SupplierOrderStatusChanged": ("status", "updated_at"),
    "SupplierOrderFailed": (),
    "KeyDelivered": ("key_id", "product_id", "fingerprint", "content_type"),
    "OrderFulfilled": ("key_count",),
    "FulfillmentFailed": (),
    "FulfillmentRetried": ("resume_from",),
    "AttemptFailed": ("step", "attempt", "retry_at"),
    "CustomerNotified": ("channel",),
    "DownloadLinkIssued": ("expires_at", "link_id", "single_use"),
    "KeysRevealed": ("who", "ip", "user_agent", "how", "link_id"),
    "KeysShredded": ("who",),
    "WebhookReceived": ("provider", "verified"),
    "SupplierPriceChanged": ("product_id",),
    "CostCapRaised": ("product_id",),
    "PurchaseHeld": (),
    "RefundRequested": ("amount", "currency"),
    "OrderRefunded": ("amount",),
    "KeyReturnStarted": (),
    "KeyReturnRefused": (),
    "KeysReturned": ("key_ids",),
}
_PARTIES = frozenset({"nowpayments", "kinguin", "engine"})
STAFF = "staff"


def customer_entry(entry: dict[str, Any], owner: str) -> dict[str, Any]:
    """A history entry (``history_view``'s shape) as the order's owner sees it."""
    full = entry["data"]
    data = {k: full[k] for k in _CUSTOMER_FIELDS.get(entry["type"], ()) if k in full}
    if isinstance(data.get("items"), list | tuple):
        data["items"] = [{k: line.get(k) for k in _LINE_FIELDS} for line in data["items"]]
    if data.get("who") not in (None, owner):
        data = {"who": STAFF}  # a person of staff: not their name, nor where they read from
    code = _failure_code(entry["type"], full)
    if code is not None:
        data["failure_code"] = code
    actor = entry["actor"] if entry["actor"] in _PARTIES | {owner} else STAFF
    return {**entry, "actor": actor, "data": data}


def _failure_code(event_type: str, data: dict[str, Any]) -> str | None:
    """The code a failure event shows in place of its reason."""
    if event_type == "PaymentFailed":
        return payment_code(str(data.get("reason", "")))
    if event_type in ("SupplierOrderFailed", "FulfillmentFailed"):
        return supplier_code(str(data.get("reason", "")))
    if event_type == "PaymentFlagged":
        return PAYMENT_MISMATCH
    return None
