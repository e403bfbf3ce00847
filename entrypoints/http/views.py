"""Request bodies and response shapes of the HTTP contract (design §6), as msgspec structs."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import msgspec

from domain.catalog import CURRENCY
from domain.events import (
    CostCapRaised,
    DomainEvent,
    DownloadLinkIssued,
    FulfillmentRetried,
    KeyReturnStarted,
    KeysReturned,
    KeysRevealed,
    KeysShredded,
    OrderPaid,
    OrderPlaced,
    PaymentFailed,
    PaymentFlagged,
    PaymentInvoiceCreated,
    PaymentStatusChanged,
    PaymentUnderpaid,
    RefundRequested,
    SupplierOrderStatusChanged,
    WebhookReceived,
)
from domain.failures import failure_code
from domain.order import (
    EMAIL_PATTERN,
    MAX_LINES,
    MAX_QUANTITY_PER_LINE,
    MAX_UNIT_PRICE,
    NOT_BLANK_PATTERN,
    Order,
)
from entrypoints.http.schema import documented, stated

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]

# A positive amount up to MAX_UNIT_PRICE, as a decimal string (exactly what the domain accepts
# as a shown price: any number of decimals, no exponent, no sign).
PRICE_PATTERN = r"^(?:[1-9][0-9]{0,4}(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*|100000(?:\.0+)?)$"
_MAX_PRICE = int(MAX_UNIT_PRICE)


def is_number(text: str) -> bool:
    """A plain non-negative whole number in ASCII digits (``"²"`` is a digit to Python, not
    here)."""
    return text.isascii() and text.isdigit()


class ItemIn(msgspec.Struct, forbid_unknown_fields=False):
    """One line of a new order. The engine prices it from the catalog; ``unit_price`` (a decimal
    string such as "19.99", or a number), when sent, is the price the client showed, and must be
    the current sale price."""

    product_id: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=200,
            examples=["5c9b5f6b2539a4e8f172916a"],
            extra_json_schema=stated(
                "a catalog product id (GET /products); one the catalog does not have answers "
                "422 Unknown product; not only white space",
                pattern=NOT_BLANK_PATTERN,
            ),
        ),
    ]
    quantity: Annotated[
        int,
        documented(
            f"keys of this product, 1 to {MAX_QUANTITY_PER_LINE} (else 422 Invalid order)",
            minimum=1,
            maximum=MAX_QUANTITY_PER_LINE,
        ),
    ]
    unit_price: Annotated[
        Decimal | None,
        documented(
            "the sale price the client showed (decimal string or number): positive, at most "
            f"{_MAX_PRICE} (else 422); a price other than the current one answers 409",
            one_of=[
                {"type": "string", "pattern": PRICE_PATTERN},
                {"type": "number", "exclusiveMinimum": 0, "maximum": _MAX_PRICE},
                {"type": "null"},
            ],
        ),
    ] = None
    offer_id: Text | None = None


class OrderIn(msgspec.Struct):
    """``POST /orders``."""

    email: Annotated[
        str,
        msgspec.Meta(
            min_length=3,
            max_length=254,
            extra_json_schema=stated(
                "the customer's e-mail address: name@domain.tld without white space or control "
                "characters (else 422 Invalid order)",
                pattern=EMAIL_PATTERN,
            ),
        ),
    ]
    items: Annotated[
        list[ItemIn],
        documented(
            f"1 to {MAX_LINES} lines (else 422 Invalid order); over all lines, at most "
            f"{MAX_QUANTITY_PER_LINE} keys of one offer (else 422) and no more keys of a product "
            "than its stock (else 409)",
            min_items=1,
            max_items=MAX_LINES,
        ),
    ]
    currency: Annotated[
        str,
        msgspec.Meta(
            min_length=3,
            max_length=10,
            extra_json_schema=stated(
                "the shop sells in EUR (case-insensitive); any other currency answers 422",
                enum=[CURRENCY, CURRENCY.upper()],
            ),
        ),
    ] = CURRENCY


class PaymentIn(msgspec.Struct):
    """``POST /payments/create``."""

    order_id: UUID


def order_view(order: Order, email: str | None, *, staff: bool = False) -> dict[str, Any]:
    """The order as clients read it (``email`` as unsealed, None once the customer is erased).
    A failure shows as its ``failure_code``; staff also see the supplier's order id, the full
    ``failure_reason``, the payment ``flags``, why the purchase is ``held`` and whether a key
    return is under way (``returning``)."""
    view: dict[str, Any] = {
        "id": str(order.id),
        "status": order.status.value,
        "version": order.version,
        "email": email,
        "currency": order.currency,
        "items": [
            {
                "product_id": item.product_id,
                "offer_id": item.offer_id,
                "quantity": item.quantity,
                "unit_price": str(item.unit_price),
            }
            for item in order.items
        ],
        "total": str(order.total),
        "invoice_id": order.invoice_id,
        "invoice_url": order.invoice_url,
        "payment_id": order.payment_id,
        "failure_code": failure_code(order),
        "key_count": len(order.keys),
        "created_at": order.placed_at.isoformat(),
        "updated_at": order.updated_at.isoformat(),
    }
    if staff:
        view |= {
            "supplier_order_id": order.supplier_order_id,
            "failure_reason": order.failure_reason,
            "flags": list(order.flags),
            "held": order.held,
            "returning": order.returning,
        }
    return view


def status_view(order: Order) -> dict[str, Any]:
    """``GET /fulfillment/{id}/status``: status and keys, never their text."""
    return {
        "order_id": str(order.id),
        "status": order.status.value,
        "keys": [
            {
                "key_id": key.key_id,
                "product_id": key.product_id,
                "content_type": key.content_type,
                "fingerprint": key.fingerprint,
            }
            for key in order.keys
        ],
        "failure_code": failure_code(order),
        "updated_at": order.updated_at.isoformat(),
    }


def payment_view(order: Order) -> dict[str, Any]:
    """``POST /payments/create``: the invoice to pay."""
    return {
        "payment_id": order.invoice_id,
        "invoice_url": order.invoice_url,
        "order_id": str(order.id),
        "status": order.status.value,
        "price_amount": str(order.total),
        "price_currency": order.currency,
    }


_ENVELOPE = ("originator_id", "originator_version", "timestamp")  # the entry's own fields


def history_view(events: list[DomainEvent], owner: str | None = None) -> list[dict[str, Any]]:
    """``GET /orders/{id}/history``: each event with its version, type, time, the actor who
    caused it, and its data (``owner`` names the customer when the list starts later)."""
    if owner is None:
        owner = events[0].owner if events and isinstance(events[0], OrderPlaced) else "customer"
    return [
        {
            "version": event.originator_version,
            "type": type(event).__name__,
            "timestamp": event.timestamp.isoformat(),
            "actor": actor_of(event, owner),
            "data": {k: v for k, v in msgspec.to_builtins(event).items() if k not in _ENVELOPE},
        }
        for event in events
    ]


_BY_PROVIDER: dict[type[DomainEvent], str] = {
    PaymentStatusChanged: "nowpayments",
    OrderPaid: "nowpayments",
    PaymentUnderpaid: "nowpayments",
    PaymentFailed: "nowpayments",
    PaymentFlagged: "nowpayments",
    SupplierOrderStatusChanged: "kinguin",
}


def actor_of(event: DomainEvent, owner: str) -> str:
    """Who caused an event: the customer, an admin, a provider, or the engine itself."""
    match event:
        case OrderPlaced() | PaymentInvoiceCreated() | DownloadLinkIssued():
            return owner
        case KeysRevealed() | KeysShredded():
            return event.who
        case (
            FulfillmentRetried()
            | CostCapRaised()
            | RefundRequested()
            | KeyReturnStarted()
            | KeysReturned()
        ):
            return event.by
        case WebhookReceived():
            return event.provider
    return _BY_PROVIDER.get(type(event), "engine")
