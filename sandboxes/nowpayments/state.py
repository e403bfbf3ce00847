"""The NOWPayments sandbox's state (invoices and their payments) and its journal records: the
changes that outlive a restart."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import msgspec

from sandboxes.nowpayments.wire import NowPaymentsInvoiceRequest

# --- state -------------------------------------------------------------------------------------


@dataclass
class Payment:
    payment_id: int
    purchase_id: str
    pay_currency: str
    pay_address: str
    pay_amount: float
    created_at: datetime
    status: str = "waiting"
    actually_paid: float = 0.0
    updated_at: datetime | None = None
    last_ipn: bytes | None = None  # the latest IPN body, re-sent stale by ``reorder_webhooks``


@dataclass
class Invoice:
    id: str
    token_id: str
    request: NowPaymentsInvoiceRequest
    created_at: datetime
    payment: Payment | None = None


# --- journal: the state changes that outlive a restart -----------------------------------------


class InvoiceCreated(msgspec.Struct, tag="invoice"):
    id: str
    token_id: str
    request: NowPaymentsInvoiceRequest
    created_at: datetime


class PaymentOpened(msgspec.Struct, tag="payment"):
    invoice_id: str
    payment_id: int
    purchase_id: str
    pay_currency: str
    pay_address: str
    pay_amount: float
    created_at: datetime


class StatusSet(msgspec.Struct, tag="status"):
    payment_id: int
    status: str
    actually_paid: float
    updated_at: datetime | None


Record = InvoiceCreated | PaymentOpened | StatusSet
