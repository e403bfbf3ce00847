"""NOWPayments API client (httpx), implementing ``application.ports.PaymentGateway``; and the
parser of its IPN bodies.

Errors: ``application.errors.PaymentGatewayError`` for any refusal, failure or unreadable
answer; ``MalformedNotification`` for an IPN body that lacks what the engine needs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

import httpx
import msgspec

from application.errors import PaymentGatewayError, UnreadableDelivery
from application.ports import Invoice
from application.webhooks import Delivery
from domain.order import order_id_from_reference
from domain.payments import PaymentNotice
from domain.webhooks import nowpayments_key


class MalformedNotification(UnreadableDelivery):
    """The IPN body is not a payment notification the engine can read."""


class _Invoice(msgspec.Struct):
    id: str | int
    invoice_url: str


class NowPaymentsClient:
    """Talks to NOWPayments (or its sandbox) over HTTP with ``x-api-key``."""

    def __init__(self, http: httpx.Client, ipn_callback_url: str) -> None:
        self._http = http
        self._ipn_callback_url = ipn_callback_url

    def create_invoice(
        self, *, order_id: str, amount: Decimal, currency: str, description: str
    ) -> Invoice:
        """Create an invoice whose IPNs come to the engine."""
        body = {
            "price_amount": float(amount),
            "price_currency": currency,
            "order_id": order_id,
            "order_description": description,
            "ipn_callback_url": self._ipn_callback_url,
        }
        try:
            response = self._http.post("/invoice", json=body)
        except httpx.HTTPError as failure:
            raise PaymentGatewayError(f"NOWPayments unreachable: {failure!r}") from failure
        if not response.is_success:
            raise PaymentGatewayError(
                f"NOWPayments refused the invoice: HTTP {response.status_code}"
            )
        try:
            invoice = msgspec.json.decode(response.content, type=_Invoice)
        except msgspec.DecodeError as bad:
            raise PaymentGatewayError("NOWPayments answered an unreadable invoice") from bad
        return Invoice(invoice_id=str(invoice.id), invoice_url=invoice.invoice_url)


MAX_AMOUNT = Decimal(10) ** 15  # no IPN amount is this large; larger is refused as unreadable
MIN_EXPONENT = -18  # nor has more decimal places than the 18 of the finest coins
_AMOUNTS = ("price_amount", "pay_amount", "actually_paid", "actually_paid_at_fiat",
            "outcome_amount")  # fmt: skip


def parse_ipn(payload: Any) -> tuple[str, PaymentNotice]:
    """Read an IPN: the order id it names and what it says about the payment.

    Ids arrive as strings or numbers depending on the endpoint; they are kept as strings.
    Amounts are numbers (or numeric strings) of at most ``MAX_AMOUNT`` and 18 decimal places.
    """
    if not isinstance(payload, dict):
        raise MalformedNotification("IPN body is not a JSON object")
    order_id, payment_id, status = (
        payload.get("order_id"),
        payload.get("payment_id"),
        payload.get("payment_status"),
    )
    if not order_id or payment_id is None or not isinstance(status, str):
        raise MalformedNotification("IPN lacks order_id, payment_id or payment_status")
    amounts = {name: _amount(payload, name) for name in _AMOUNTS}
    notice = PaymentNotice(
        payment_id=str(payment_id),
        payment_status=status,
        invoice_id=_text(payload.get("invoice_id")),
        price_currency=_text(payload.get("price_currency")),
        pay_currency=_text(payload.get("pay_currency")),
        parent_payment_id=_text(payload.get("parent_payment_id")),
        outcome_currency=_text(payload.get("outcome_currency")),
        **amounts,
    )
    return str(order_id), notice


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _amount(payload: dict[str, Any], name: str) -> Decimal | None:
    """The amount ``name`` of the IPN, exactly as written (the body is read with decimals);
    None when absent or empty (the payment check then flags what it needs and lacks)."""
    value = payload.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise MalformedNotification(f"{name} {value!r} is not a number")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise MalformedNotification(f"{name} {value!r} is not a number") from None
    if not amount.is_finite() or not 0 <= amount < MAX_AMOUNT:
        raise MalformedNotification(f"{name} {value!r} is not an amount")
    if amount.as_tuple().exponent < MIN_EXPONENT:  # type: ignore[operator]
        raise MalformedNotification(f"{name} {value!r} has too many decimal places")
    return amount


def read_ipn(
    raw_body: bytes, headers: Mapping[str, str] | None = None
) -> tuple[UUID | None, PaymentNotice, Delivery]:
    """A verified IPN body as the use cases take it: the order it names (if it names one of
    ours), what it says, and the delivery to store once."""
    try:
        payload = json.loads(raw_body, parse_float=Decimal)
    except ValueError as bad:
        raise MalformedNotification(f"IPN body is not JSON: {bad}") from None
    except RecursionError:
        raise MalformedNotification("IPN body is nested too deeply") from None
    order_ref, notice = parse_ipn(payload)
    key = nowpayments_key(notice.payment_id, notice.payment_status)
    delivery = Delivery.of("nowpayments", key, "ipn", raw_body, headers)
    return order_id_from_reference(order_ref), notice, delivery
