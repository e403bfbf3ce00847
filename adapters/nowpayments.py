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

from application.errors import PaymentGatewayError
from application.ports import Invoice
from application.webhooks import Delivery
from domain.order import order_id_from_reference
from domain.payments import PaymentNotice
from domain.webhooks import nowpayments_key


class MalformedNotification(ValueError):
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


def parse_ipn(payload: Any) -> tuple[str, PaymentNotice]:
    """Read an IPN: the order id it names and what it says about the payment.

    Ids arrive as strings or numbers depending on the endpoint; they are kept as strings.
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
    notice = PaymentNotice(
        payment_id=str(payment_id),
        payment_status=status,
        invoice_id=_text(payload.get("invoice_id")),
        price_amount=_amount(payload.get("price_amount")),
        price_currency=_text(payload.get("price_currency")),
        actually_paid=_text(payload.get("actually_paid")),
        pay_currency=_text(payload.get("pay_currency")),
        parent_payment_id=_text(payload.get("parent_payment_id")),
    )
    return str(order_id), notice


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _amount(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise MalformedNotification(f"price_amount {value!r} is not a number") from None
    if not amount.is_finite():
        raise MalformedNotification(f"price_amount {value!r} is not a finite number")
    return amount


def read_ipn(
    raw_body: bytes, headers: Mapping[str, str] | None = None
) -> tuple[UUID | None, PaymentNotice, Delivery]:
    """A verified IPN body as the use cases take it: the order it names (if it names one of
    ours), what it says, and the delivery to store once."""
    try:
        payload = json.loads(raw_body)
    except ValueError as bad:
        raise MalformedNotification(f"IPN body is not JSON: {bad}") from None
    order_ref, notice = parse_ipn(payload)
    delivery = Delivery(
        provider="nowpayments",
        natural_key=nowpayments_key(notice.payment_id, notice.payment_status),
        event_name="ipn",
        body=raw_body.decode(errors="replace"),
        headers=dict(headers or {}),
    )
    return order_id_from_reference(order_ref), notice, delivery
