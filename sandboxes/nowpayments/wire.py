"""What the NOWPayments sandbox reads and writes on the wire: invoices, payments, IPNs and
errors in NOWPayments' shapes (EXTERNAL_APIS §2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import msgspec

from sandboxes.nowpayments.config import PaymentStatus

# --- wire types -------------------------------------------------------------------------------


class NowPaymentsInvoiceRequest(msgspec.Struct):
    """Body of ``POST /v1/invoice``."""

    price_amount: Annotated[float, msgspec.Meta(gt=0)]
    price_currency: Annotated[str, msgspec.Meta(min_length=1)]
    pay_currency: str | None = None
    ipn_callback_url: str | None = None
    order_id: str | None = None
    order_description: str | None = None
    success_url: str | None = None
    cancel_url: str | None = None
    partially_paid_url: str | None = None
    is_fixed_rate: bool = False
    is_fee_paid_by_user: bool = False


class NowPaymentsInvoice(msgspec.Struct):
    """Answer of ``POST /v1/invoice`` (``id`` and ``price_amount`` are strings, as the vendor's)."""

    id: str
    token_id: str
    order_id: str | None
    order_description: str | None
    price_amount: str
    price_currency: str
    pay_currency: str | None
    ipn_callback_url: str | None
    invoice_url: str
    success_url: str | None
    cancel_url: str | None
    partially_paid_url: str | None
    payout_currency: str | None
    created_at: str
    updated_at: str
    is_fixed_rate: bool
    is_fee_paid_by_user: bool


class NowPaymentsFee(msgspec.Struct, rename="camel"):
    """The nested ``fee`` object of an IPN."""

    currency: str
    deposit_fee: float
    withdrawal_fee: float
    service_fee: float


class NowPaymentsIpn(msgspec.Struct):
    """Payload of a payment IPN (EXTERNAL_APIS §2.6)."""

    payment_id: int
    parent_payment_id: int | None
    invoice_id: int
    payment_status: str
    pay_address: str
    payin_extra_id: str | None
    price_amount: float
    price_currency: str
    pay_amount: float
    actually_paid: float
    actually_paid_at_fiat: float
    pay_currency: str
    order_id: str | None
    order_description: str | None
    purchase_id: str
    outcome_amount: float
    outcome_currency: str
    payment_extra_ids: list[str] | None
    fee: NowPaymentsFee


class NowPaymentsPayment(msgspec.Struct):
    """Answer of ``GET /v1/payment/{payment_id}`` (``payment_id`` is a number here)."""

    payment_id: int
    invoice_id: int
    payment_status: str
    pay_address: str
    payin_extra_id: str | None
    price_amount: float
    price_currency: str
    pay_amount: float
    actually_paid: float
    pay_currency: str
    order_id: str | None
    order_description: str | None
    purchase_id: str
    outcome_amount: float
    outcome_currency: str
    payin_hash: str | None
    payout_hash: str | None
    payment_extra_ids: list[str] | None
    type: str
    created_at: str
    updated_at: str


class NowPaymentsSimulateRequest(msgspec.Struct):
    """Body of the sandbox control ``POST /payments/{invoice_id}/simulate``."""

    status: PaymentStatus
    actually_paid: Annotated[float, msgspec.Meta(ge=0)] | None = None


class NowPaymentsSimulateResult(msgspec.Struct):
    """Answer of the simulate control: what was set and how the IPN receiver answered."""

    invoice_id: str
    payment_id: int
    payment_status: str
    ipn_callback_url: str | None
    ipn_status_code: int | None


class NowPaymentsStatus(msgspec.Struct):
    """Answer of ``GET /v1/status``."""

    message: str


class NowPaymentsErrorBody(msgspec.Struct, kw_only=True, rename={"status_code": "statusCode"}):
    """The vendor's error body."""

    status: bool = False
    status_code: int
    code: str
    message: str


class NowPaymentsApiError(Exception):
    """A failure of the vendor API part, answered with the vendor's error body."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
