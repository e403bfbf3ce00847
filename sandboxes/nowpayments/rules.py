"""How the sandbox's payments move and look: ids, rates, fees, a simulated status, the IPN,
the views and the invoice page, and posting an IPN."""

from __future__ import annotations

import html
import logging
import secrets
import string
from collections.abc import Container
from datetime import UTC, datetime

from sandboxes.nowpayments.config import FULLY_PAID, RATES, SERVICE_FEE_RATE
from sandboxes.nowpayments.state import Invoice, Payment
from sandboxes.nowpayments.wire import (
    NowPaymentsFee,
    NowPaymentsInvoice,
    NowPaymentsIpn,
    NowPaymentsPayment,
    NowPaymentsSimulateRequest,
)

logger = logging.getLogger(__name__)


# --- pure helpers ------------------------------------------------------------------------------


def system_now() -> datetime:
    return datetime.now(UTC)


def _timestamp(at: datetime) -> str:
    """``2022-04-28T10:20:53.383Z``: the vendor's timestamp format."""
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fresh_id(taken: Container[object] = ()) -> int:
    """A random 10-digit id not in ``taken`` (whether it keys by int or by str)."""
    while True:
        candidate = 1_000_000_000 + secrets.randbelow(9_000_000_000)
        if candidate not in taken and str(candidate) not in taken:
            return candidate


def token_id() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(9))


def rate(pay_currency: str) -> float:
    """Fiat per coin; unknown coins count as stablecoins."""
    return RATES.get(pay_currency, 1.0)


def _amount_text(amount: float) -> str:
    """``19.99`` → ``"19.99"``, ``1000.0`` → ``"1000"``: the vendor's string amounts."""
    return f"{amount:.8f}".rstrip("0").rstrip(".")


def apply_status(payment: Payment, request: NowPaymentsSimulateRequest) -> None:
    payment.status = request.status
    payment.updated_at = system_now()
    if request.actually_paid is not None:
        payment.actually_paid = request.actually_paid
    elif request.status in FULLY_PAID:
        payment.actually_paid = payment.pay_amount
    elif request.status == "partially_paid":
        payment.actually_paid = round(payment.pay_amount / 2, 8)
    else:
        payment.actually_paid = 0.0


def _fee(payment: Payment) -> NowPaymentsFee:
    service_fee = round(payment.actually_paid * SERVICE_FEE_RATE, 8)
    return NowPaymentsFee(payment.pay_currency, 0.0, 0.0, service_fee)


def ipn_of(invoice: Invoice, payment: Payment) -> NowPaymentsIpn:
    fee = _fee(payment)
    return NowPaymentsIpn(
        payment_id=payment.payment_id,
        parent_payment_id=None,
        invoice_id=int(invoice.id),
        payment_status=payment.status,
        pay_address=payment.pay_address,
        payin_extra_id=None,
        price_amount=invoice.request.price_amount,
        price_currency=invoice.request.price_currency,
        pay_amount=payment.pay_amount,
        actually_paid=payment.actually_paid,
        actually_paid_at_fiat=round(payment.actually_paid * rate(payment.pay_currency), 2),
        pay_currency=payment.pay_currency,
        order_id=invoice.request.order_id,
        order_description=invoice.request.order_description,
        purchase_id=payment.purchase_id,
        outcome_amount=round(payment.actually_paid - fee.service_fee, 8),
        outcome_currency=payment.pay_currency,
        payment_extra_ids=None,
        fee=fee,
    )


def payment_view(invoice: Invoice, payment: Payment) -> NowPaymentsPayment:
    ipn = ipn_of(invoice, payment)
    return NowPaymentsPayment(
        payment_id=ipn.payment_id,
        invoice_id=ipn.invoice_id,
        payment_status=ipn.payment_status,
        pay_address=ipn.pay_address,
        payin_extra_id=ipn.payin_extra_id,
        price_amount=ipn.price_amount,
        price_currency=ipn.price_currency,
        pay_amount=ipn.pay_amount,
        actually_paid=ipn.actually_paid,
        pay_currency=ipn.pay_currency,
        order_id=ipn.order_id,
        order_description=ipn.order_description,
        purchase_id=ipn.purchase_id,
        outcome_amount=ipn.outcome_amount,
        outcome_currency=ipn.outcome_currency,
        payin_hash=None,
        payout_hash=None,
        payment_extra_ids=None,
        type="crypto2crypto",
        created_at=_timestamp(payment.created_at),
        updated_at=_timestamp(payment.updated_at or payment.created_at),
    )


def invoice_view(invoice: Invoice, invoice_url: str) -> NowPaymentsInvoice:
    request = invoice.request
    return NowPaymentsInvoice(
        id=invoice.id,
        token_id=invoice.token_id,
        order_id=request.order_id,
        order_description=request.order_description,
        price_amount=_amount_text(request.price_amount),
        price_currency=request.price_currency,
        pay_currency=request.pay_currency,
        ipn_callback_url=request.ipn_callback_url,
        invoice_url=invoice_url,
        success_url=request.success_url,
        cancel_url=request.cancel_url,
        partially_paid_url=request.partially_paid_url,
        payout_currency=None,
        created_at=_timestamp(invoice.created_at),
        updated_at=_timestamp(invoice.created_at),
        is_fixed_rate=request.is_fixed_rate,
        is_fee_paid_by_user=request.is_fee_paid_by_user,
    )


def invoice_html(invoice: Invoice, base_url: str) -> str:
    status = invoice.payment.status if invoice.payment else "waiting (no payment yet)"
    price = f"{_amount_text(invoice.request.price_amount)} {invoice.request.price_currency}"
    command = (
        f"curl -X POST {base_url}/sandbox/nowpayments/payments/{invoice.id}/simulate "
        "-H 'Authorization: Bearer <an admin token of the engine>' "
        "-H 'Content-Type: application/json' -d '{\"status\": \"finished\"}'"
    )
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>Sandbox invoice</title></head>"
        f"<body><h1>Sandbox invoice {html.escape(invoice.id)}</h1>"
        f"<p>Order: {html.escape(invoice.request.order_id or '-')}</p>"
        f"<p>Price: {html.escape(price)}</p><p>Status: {html.escape(status)}</p>"
        f"<p>Simulate a payment:</p><pre>{html.escape(command)}</pre></body></html>"
    )
