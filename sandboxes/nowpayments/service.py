"""One NOWPayments sandbox instance: its invoices and payments, and the IPNs it sends."""

from __future__ import annotations

import logging
import secrets
from typing import Any

import httpx
import msgspec
from litestar import Request, Response

from adapters.nowpayments_signature import canonical_body, sign
from sandboxes.control import (
    SandboxControlError,
)
from sandboxes.faults import (
    FaultSwitch,
)
from sandboxes.gate import ApiGate, post_callback, send_copies
from sandboxes.journal import Journal
from sandboxes.nowpayments.config import (
    BECH32,
    DEFAULT_PAY_CURRENCY,
    IPN_TIMEOUT_S,
    NowPaymentsSandboxConfig,
)
from sandboxes.nowpayments.params import FORBIDDEN_BODY, fault_error
from sandboxes.nowpayments.rules import (
    apply_status,
    fresh_id,
    invoice_html,
    invoice_view,
    ipn_of,
    payment_view,
    rate,
    system_now,
    token_id,
)
from sandboxes.nowpayments.state import (
    Invoice,
    InvoiceCreated,
    Payment,
    PaymentOpened,
    Record,
    StatusSet,
)
from sandboxes.nowpayments.wire import (
    NowPaymentsApiError,
    NowPaymentsInvoice,
    NowPaymentsInvoiceRequest,
    NowPaymentsPayment,
    NowPaymentsSimulateRequest,
    NowPaymentsSimulateResult,
)

logger = logging.getLogger(__name__)


class NowPaymentsSandbox:
    """Invoices and their payments of one sandbox instance."""

    def __init__(self, config: NowPaymentsSandboxConfig) -> None:
        self._config = config
        self._base_url = config.public_base_url.rstrip("/")
        self._invoices: dict[str, Invoice] = {}
        self._payments: dict[int, tuple[Invoice, Payment]] = {}
        self.faults = FaultSwitch("nowpayments", config.faults, config.rng)
        self._gate = ApiGate(
            key=config.api_key,
            header="x-api-key",
            faults=self.faults,
            timeout_s=config.timeout_s,
            refusal=lambda: Response(FORBIDDEN_BODY, status_code=403),
            fault_error=fault_error,
        )
        state = config.state_dir / "nowpayments.jsonl" if config.state_dir is not None else None
        self._journal: Journal[Record] = Journal(state, Record)
        for record in self._journal.replay():
            self._apply(record)

    def _apply(self, record: Record) -> None:
        """Replay one journal record."""
        if isinstance(record, InvoiceCreated):
            invoice = Invoice(record.id, record.token_id, record.request, record.created_at)
            self._invoices[invoice.id] = invoice
        elif isinstance(record, PaymentOpened):
            invoice = self._invoices[record.invoice_id]
            invoice.payment = Payment(
                payment_id=record.payment_id,
                purchase_id=record.purchase_id,
                pay_currency=record.pay_currency,
                pay_address=record.pay_address,
                pay_amount=record.pay_amount,
                created_at=record.created_at,
            )
            self._payments[record.payment_id] = (invoice, invoice.payment)
        else:
            payment = self._payments[record.payment_id][1]
            payment.status = record.status
            payment.actually_paid = record.actually_paid
            payment.updated_at = record.updated_at

    async def admit(self, request: Request[Any, Any, Any]) -> Response[Any] | None:
        """Gate a ``/v1`` request: 403 without the key, then the injected faults (which raise)."""
        return await self._gate.admit(request)

    def create_invoice(self, request: NowPaymentsInvoiceRequest) -> NowPaymentsInvoice:
        """Store a new invoice and describe it as the vendor does."""
        invoice_id = fresh_id(self._invoices)
        invoice = Invoice(str(invoice_id), token_id(), request, system_now())
        self._journal.append(
            InvoiceCreated(invoice.id, invoice.token_id, request, invoice.created_at)
        )
        self._invoices[invoice.id] = invoice
        return invoice_view(invoice, self.invoice_url(invoice.id))

    def invoice_url(self, invoice_id: str) -> str:
        """Where the customer pays: this sandbox's invoice page."""
        return f"{self._base_url}/sandbox/nowpayments/payment/?iid={invoice_id}"

    def payment(self, payment_id: str) -> NowPaymentsPayment:
        """Return a payment or raise the vendor's 404."""
        known = payment_id.isascii() and payment_id.isdigit()
        found = self._payments.get(int(payment_id)) if known else None
        if found is None:
            raise NowPaymentsApiError(404, "NOT_FOUND", f"Payment {payment_id} not found")
        return payment_view(*found)

    def invoice_page(self, invoice_id: str | None) -> str | None:
        """The HTML invoice page, or ``None`` when the invoice is unknown."""
        invoice = self._invoices.get(invoice_id or "")
        if invoice is None:
            return None
        return invoice_html(invoice, self._base_url)

    async def simulate(
        self, invoice_id: str, request: NowPaymentsSimulateRequest
    ) -> NowPaymentsSimulateResult:
        """Set the invoice's payment status, send the IPN, report how it was received."""
        invoice = self._invoices.get(invoice_id)
        if invoice is None:
            raise SandboxControlError(404, f"Invoice {invoice_id} not found")
        payment = invoice.payment or self._open_payment(invoice)
        apply_status(payment, request)
        self._journal.append(
            StatusSet(payment.payment_id, payment.status, payment.actually_paid, payment.updated_at)
        )
        return NowPaymentsSimulateResult(
            invoice_id=invoice.id,
            payment_id=payment.payment_id,
            payment_status=payment.status,
            ipn_callback_url=invoice.request.ipn_callback_url,
            ipn_status_code=await self._send_ipn(invoice, payment),
        )

    def _open_payment(self, invoice: Invoice) -> Payment:
        pay_currency = (invoice.request.pay_currency or DEFAULT_PAY_CURRENCY).lower()
        payment = Payment(
            payment_id=fresh_id(self._payments),
            purchase_id=str(fresh_id()),
            pay_currency=pay_currency,
            pay_address="tb1q" + "".join(secrets.choice(BECH32) for _ in range(38)),
            pay_amount=round(invoice.request.price_amount / rate(pay_currency), 8),
            created_at=system_now(),
        )
        self._journal.append(
            PaymentOpened(
                invoice.id,
                payment.payment_id,
                payment.purchase_id,
                payment.pay_currency,
                payment.pay_address,
                payment.pay_amount,
                payment.created_at,
            )
        )
        invoice.payment = payment
        self._payments[payment.payment_id] = (invoice, payment)
        return payment

    async def _send_ipn(self, invoice: Invoice, payment: Payment) -> int | None:
        url = invoice.request.ipn_callback_url
        if not url:
            return None
        if not self._config.ipn_secret.strip():
            # The vendor sends no IPN until an IPN secret exists.
            logger.warning("nowpayments sandbox: no IPN secret configured; IPN not sent")
            return None
        body = canonical_body(msgspec.to_builtins(ipn_of(invoice, payment)))
        stale, payment.last_ipn = payment.last_ipn, body
        status_code = await self._deliver_ipn(url, body, f"{payment.status} IPN")
        if stale is not None and self.faults.current.reorder_webhooks:
            await self._deliver_ipn(url, stale, "stale IPN")
        return status_code

    async def _deliver_ipn(self, url: str, body: bytes, what: str) -> int | None:
        """Sign and POST one IPN, subject to the drop and duplicate faults; return the first
        copy's status code (``None`` when dropped or unreachable)."""
        headers = {
            "Content-Type": "application/json",
            "x-nowpayments-sig": sign(self._config.ipn_secret, body),
        }
        callbacks = self._config.callbacks

        async def post() -> httpx.Response | None:
            return await post_callback(
                callbacks, url, body, headers=headers, timeout_s=IPN_TIMEOUT_S, log=logger,
                what="nowpayments sandbox: IPN",
            )  # fmt: skip

        what = f"nowpayments sandbox: {what} to {url}"
        answers = await send_copies(self.faults, logger, what, post)
        first = answers[0] if answers else None
        return None if first is None else first.status_code
