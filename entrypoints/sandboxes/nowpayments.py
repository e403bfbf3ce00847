"""NOWPayments API sandbox: an in-memory simulator served under ``/sandbox/nowpayments``.

The vendor API part mirrors EXTERNAL_APIS §2 below ``/v1`` (header ``x-api-key``):
``GET /v1/status``, ``POST /v1/invoice``, ``GET /v1/payment/{payment_id}``. Errors use the vendor's
body ``{"status": false, "statusCode", "code", "message"}``; a wrong key answers 403
``INVALID_API_KEY`` (the vendor does not document this answer; this is the likely one).

Two routes stand in for the customer and need no key:

- ``GET /payment/?iid=<invoice id>``: the tiny invoice page ``invoice_url`` points at;
- ``POST /payments/{invoice_id}/simulate`` ``{"status": ..., "actually_paid"?: number}``: the first
  call creates the invoice's payment (a numeric ``payment_id`` that later calls keep), every call
  sets its status and sends the IPN inline to the invoice's ``ipn_callback_url``: a compact,
  recursively key-sorted JSON body signed with HMAC-SHA512 under the IPN secret in
  ``x-nowpayments-sig``, exactly the bytes that were signed. Control errors are RFC 9457 problems.
  The IPN carries what the vendor's does (EXTERNAL_APIS §2.6): ``invoice_id``, ``price_amount``
  and ``price_currency`` of the invoice, ``pay_amount`` (the price in ``pay_currency`` at a fixed
  sandbox rate), ``actually_paid`` (``pay_amount`` for a paid status, half of it for
  ``partially_paid``, 0 otherwise, or the ``actually_paid`` asked for: a ``finished`` below
  ``pay_amount`` is a finished-but-underpaid IPN), ``actually_paid_at_fiat``, and
  ``outcome_amount`` / ``outcome_currency`` (``actually_paid`` less a 0.5 % fee).

Faults (``entrypoints.sandboxes.faults``; ``GET``/``POST /faults``, no key) make it hostile on
demand. It takes ``error_rate``, ``rate_limit_rate``, ``latency_ms``, ``timeout_rate``,
``duplicate_webhooks``, ``reorder_webhooks`` and ``drop_webhook_rate``; the Kinguin-only fields
answer 400. After the key check, each ``/v1`` request (never the invoice page or simulate) waits
``latency_ms``, then may hang ``timeout_s`` and answer 504 ``GATEWAY_TIMEOUT``, else 429
``TOO_MANY_REQUESTS`` (with ``Retry-After``), else 500 ``INTERNAL_ERROR``; a faulted request
changes nothing. An IPN may be dropped (logged at INFO; simulate then reports
``ipn_status_code: null``) or sent twice; with ``reorder_webhooks`` the previous status's IPN of the
same payment, if any, is sent again (stale, same bytes and signature) right after the new one.
"""

from __future__ import annotations

import hmac
import html
import logging
import random
import re
import secrets
import string
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import httpx
import msgspec
from litestar import MediaType, Request, Response, Router, get, post
from litestar.exceptions import ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery, RawBody

from adapters.nowpayments_signature import canonical_body, sign
from entrypoints.sandboxes.callbacks import Callbacks, CallbacksClosed
from entrypoints.sandboxes.control import (
    ControlCheck,
    SandboxControlError,
    control_guards,
    fault_routes,
    on_control_error,
)
from entrypoints.sandboxes.faults import (
    DEFAULT_TIMEOUT_S,
    NO_FAULTS,
    ApiFault,
    Faults,
    FaultSwitch,
)
from entrypoints.sandboxes.journal import Journal

logger = logging.getLogger(__name__)

PaymentStatus = Literal[
    "waiting",
    "confirming",
    "confirmed",
    "sending",
    "partially_paid",
    "finished",
    "failed",
    "refunded",
    "expired",
]

_IPN_TIMEOUT_S = 5.0
_DEFAULT_PAY_CURRENCY = "btc"
# Fixed sandbox rates (fiat units per coin): enough to make pay_amount look plausible.
_RATES = {"btc": 65_000.0, "eth": 3_200.0, "ltc": 85.0, "trx": 0.12, "xmr": 160.0}
_SERVICE_FEE_RATE = 0.005
_FULLY_PAID: frozenset[str] = frozenset(
    {"confirming", "confirmed", "sending", "finished", "refunded"}
)
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_MISSING_FIELD = re.compile(r"missing required field `(?P<name>[^`]+)`")
_StructT = TypeVar("_StructT", bound=msgspec.Struct)


@dataclass(frozen=True)
class NowPaymentsSandboxConfig:
    """Settings of one NOWPayments sandbox instance.

    ``faults`` are in force from start-up (see ``faults_from_env``; Kinguin-only faults are
    refused); ``timeout_s`` is how long a ``timeout_rate`` fault hangs before its 504; ``rng``
    decides fractional fault rates (inject a seeded one for reproducible runs).
    """

    api_key: str
    ipn_secret: str
    public_base_url: str
    faults: Faults = NO_FAULTS
    timeout_s: float = DEFAULT_TIMEOUT_S
    callbacks: Callbacks = field(
        default_factory=lambda: Callbacks(keep_connections=False), compare=False, repr=False
    )
    """How IPNs go out: the app's one long-lived client (a client per call by default)."""
    rng: random.Random | None = field(default=None, compare=False, repr=False)
    control_check: ControlCheck | None = field(default=None, compare=False, repr=False)
    """Who may simulate payments and set faults; None: anyone (standalone and test sandboxes)."""
    state_dir: Path | None = None
    """Where the sandbox journals its invoices and payments across restarts; None: memory only."""


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


# --- state -------------------------------------------------------------------------------------


@dataclass
class _Payment:
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
class _Invoice:
    id: str
    token_id: str
    request: NowPaymentsInvoiceRequest
    created_at: datetime
    payment: _Payment | None = None


# --- journal: the state changes that outlive a restart -----------------------------------------


class _InvoiceCreated(msgspec.Struct, tag="invoice"):
    id: str
    token_id: str
    request: NowPaymentsInvoiceRequest
    created_at: datetime


class _PaymentOpened(msgspec.Struct, tag="payment"):
    invoice_id: str
    payment_id: int
    purchase_id: str
    pay_currency: str
    pay_address: str
    pay_amount: float
    created_at: datetime


class _StatusSet(msgspec.Struct, tag="status"):
    payment_id: int
    status: str
    actually_paid: float
    updated_at: datetime | None


_Record = _InvoiceCreated | _PaymentOpened | _StatusSet


class _NowPaymentsSandbox:
    """Invoices and their payments of one sandbox instance."""

    def __init__(self, config: NowPaymentsSandboxConfig) -> None:
        self._config = config
        self._base_url = config.public_base_url.rstrip("/")
        self._invoices: dict[str, _Invoice] = {}
        self._payments: dict[int, tuple[_Invoice, _Payment]] = {}
        self.faults = FaultSwitch("nowpayments", config.faults, config.rng)
        state = config.state_dir / "nowpayments.jsonl" if config.state_dir is not None else None
        self._journal: Journal[_Record] = Journal(state, _Record)
        for record in self._journal.replay():
            self._apply(record)

    def _apply(self, record: _Record) -> None:
        """Replay one journal record."""
        if isinstance(record, _InvoiceCreated):
            invoice = _Invoice(record.id, record.token_id, record.request, record.created_at)
            self._invoices[invoice.id] = invoice
        elif isinstance(record, _PaymentOpened):
            invoice = self._invoices[record.invoice_id]
            invoice.payment = _Payment(
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

    def authorized(self, api_key: str | None) -> bool:
        """Tell whether the request carries the configured ``x-api-key``."""
        return api_key is not None and hmac.compare_digest(
            api_key.encode(), self._config.api_key.encode()
        )

    async def admit(self, request: Request[Any, Any, Any]) -> Response[NowPaymentsErrorBody] | None:
        """Gate a ``/v1`` request: 403 without the key, then the injected faults (which raise)."""
        if not self.authorized(request.headers.get("x-api-key")):
            return Response(_FORBIDDEN_BODY, status_code=403)
        fault = await self.faults.before_api_call(self._config.timeout_s)
        if fault is not None:
            raise _fault_error(fault)
        return None

    def create_invoice(self, request: NowPaymentsInvoiceRequest) -> NowPaymentsInvoice:
        """Store a new invoice and describe it as the vendor does."""
        invoice_id = _fresh_id(self._invoices)
        invoice = _Invoice(str(invoice_id), _token_id(), request, _now())
        self._journal.append(
            _InvoiceCreated(invoice.id, invoice.token_id, request, invoice.created_at)
        )
        self._invoices[invoice.id] = invoice
        return _invoice_view(invoice, self.invoice_url(invoice.id))

    def invoice_url(self, invoice_id: str) -> str:
        """Where the customer pays: this sandbox's invoice page."""
        return f"{self._base_url}/sandbox/nowpayments/payment/?iid={invoice_id}"

    def payment(self, payment_id: str) -> NowPaymentsPayment:
        """Return a payment or raise the vendor's 404."""
        known = payment_id.isascii() and payment_id.isdigit()
        found = self._payments.get(int(payment_id)) if known else None
        if found is None:
            raise NowPaymentsApiError(404, "NOT_FOUND", f"Payment {payment_id} not found")
        return _payment_view(*found)

    def invoice_page(self, invoice_id: str | None) -> str | None:
        """The HTML invoice page, or ``None`` when the invoice is unknown."""
        invoice = self._invoices.get(invoice_id or "")
        if invoice is None:
            return None
        return _invoice_html(invoice, self._base_url)

    async def simulate(
        self, invoice_id: str, request: NowPaymentsSimulateRequest
    ) -> NowPaymentsSimulateResult:
        """Set the invoice's payment status, send the IPN, report how it was received."""
        invoice = self._invoices.get(invoice_id)
        if invoice is None:
            raise SandboxControlError(404, f"Invoice {invoice_id} not found")
        payment = invoice.payment or self._open_payment(invoice)
        _apply_status(payment, request)
        self._journal.append(
            _StatusSet(
                payment.payment_id, payment.status, payment.actually_paid, payment.updated_at
            )
        )
        return NowPaymentsSimulateResult(
            invoice_id=invoice.id,
            payment_id=payment.payment_id,
            payment_status=payment.status,
            ipn_callback_url=invoice.request.ipn_callback_url,
            ipn_status_code=await self._send_ipn(invoice, payment),
        )

    def _open_payment(self, invoice: _Invoice) -> _Payment:
        pay_currency = (invoice.request.pay_currency or _DEFAULT_PAY_CURRENCY).lower()
        payment = _Payment(
            payment_id=_fresh_id(self._payments),
            purchase_id=str(_fresh_id()),
            pay_currency=pay_currency,
            pay_address="tb1q" + "".join(secrets.choice(_BECH32) for _ in range(38)),
            pay_amount=round(invoice.request.price_amount / _rate(pay_currency), 8),
            created_at=_now(),
        )
        self._journal.append(
            _PaymentOpened(
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

    async def _send_ipn(self, invoice: _Invoice, payment: _Payment) -> int | None:
        url = invoice.request.ipn_callback_url
        if not url:
            return None
        if not self._config.ipn_secret.strip():
            # The vendor sends no IPN until an IPN secret exists.
            logger.warning("nowpayments sandbox: no IPN secret configured; IPN not sent")
            return None
        body = canonical_body(msgspec.to_builtins(_ipn(invoice, payment)))
        stale, payment.last_ipn = payment.last_ipn, body
        status_code = await self._deliver_ipn(url, body, f"{payment.status} IPN")
        if stale is not None and self.faults.current.reorder_webhooks:
            await self._deliver_ipn(url, stale, "stale IPN")
        return status_code

    async def _deliver_ipn(self, url: str, body: bytes, what: str) -> int | None:
        """Sign and POST one IPN, subject to the drop and duplicate faults; return the first
        copy's status code (``None`` when dropped or unreachable)."""
        if self.faults.drop_webhook():
            logger.info("nowpayments sandbox: %s to %s dropped by fault", what, url)
            return None
        headers = {
            "Content-Type": "application/json",
            "x-nowpayments-sig": sign(self._config.ipn_secret, body),
        }
        callbacks = self._config.callbacks
        copies = range(self.faults.webhook_copies())
        codes = [await _post(callbacks, url, body, headers) for _ in copies]
        return codes[0]


# --- pure helpers ------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _timestamp(at: datetime) -> str:
    """``2022-04-28T10:20:53.383Z``: the vendor's timestamp format."""
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fresh_id(taken: Container[object] = ()) -> int:
    """A random 10-digit id not in ``taken`` (whether it keys by int or by str)."""
    while True:
        candidate = 1_000_000_000 + secrets.randbelow(9_000_000_000)
        if candidate not in taken and str(candidate) not in taken:
            return candidate


def _token_id() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(9))


def _rate(pay_currency: str) -> float:
    """Fiat per coin; unknown coins count as stablecoins."""
    return _RATES.get(pay_currency, 1.0)


def _amount_text(amount: float) -> str:
    """``19.99`` → ``"19.99"``, ``1000.0`` → ``"1000"``: the vendor's string amounts."""
    return f"{amount:.8f}".rstrip("0").rstrip(".")


def _apply_status(payment: _Payment, request: NowPaymentsSimulateRequest) -> None:
    payment.status = request.status
    payment.updated_at = _now()
    if request.actually_paid is not None:
        payment.actually_paid = request.actually_paid
    elif request.status in _FULLY_PAID:
        payment.actually_paid = payment.pay_amount
    elif request.status == "partially_paid":
        payment.actually_paid = round(payment.pay_amount / 2, 8)
    else:
        payment.actually_paid = 0.0


def _fee(payment: _Payment) -> NowPaymentsFee:
    service_fee = round(payment.actually_paid * _SERVICE_FEE_RATE, 8)
    return NowPaymentsFee(payment.pay_currency, 0.0, 0.0, service_fee)


def _ipn(invoice: _Invoice, payment: _Payment) -> NowPaymentsIpn:
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
        actually_paid_at_fiat=round(payment.actually_paid * _rate(payment.pay_currency), 2),
        pay_currency=payment.pay_currency,
        order_id=invoice.request.order_id,
        order_description=invoice.request.order_description,
        purchase_id=payment.purchase_id,
        outcome_amount=round(payment.actually_paid - fee.service_fee, 8),
        outcome_currency=payment.pay_currency,
        payment_extra_ids=None,
        fee=fee,
    )


def _payment_view(invoice: _Invoice, payment: _Payment) -> NowPaymentsPayment:
    ipn = _ipn(invoice, payment)
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


def _invoice_view(invoice: _Invoice, invoice_url: str) -> NowPaymentsInvoice:
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


def _invoice_html(invoice: _Invoice, base_url: str) -> str:
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


async def _post(callbacks: Callbacks, url: str, body: bytes, headers: dict[str, str]) -> int | None:
    """POST ``body``; return the receiver's status code, or ``None`` when it is unreachable."""
    try:
        response = await callbacks.post(url, body, headers, _IPN_TIMEOUT_S)
    except CallbacksClosed:
        return None  # shutting down: counted by the callbacks' close
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        logger.warning("nowpayments sandbox: IPN to %s failed: %r", url, exc)
        return None
    if not response.is_success:
        logger.warning("nowpayments sandbox: IPN to %s answered %s", url, response.status_code)
    return response.status_code


def _fault_error(fault: ApiFault) -> NowPaymentsApiError:
    """The vendor-style answer to an injected API fault."""
    if fault == "timeout":
        return NowPaymentsApiError(504, "GATEWAY_TIMEOUT", "Gateway timeout")
    if fault == "rate_limit":
        return NowPaymentsApiError(
            429, "TOO_MANY_REQUESTS", "Too many requests", headers={"Retry-After": "1"}
        )
    return NowPaymentsApiError(500, "INTERNAL_ERROR", "Internal server error")


def _decode_message(exc: msgspec.ValidationError) -> str:
    """Phrase msgspec's complaint the way the vendor does for a missing field."""
    missing = _MISSING_FIELD.search(str(exc))
    return f'"{missing.group("name")}" is required' if missing else str(exc)


def _decode_invoice(body: bytes) -> NowPaymentsInvoiceRequest:
    try:
        return msgspec.json.decode(body, type=NowPaymentsInvoiceRequest)
    except msgspec.ValidationError as exc:
        raise NowPaymentsApiError(400, "INVALID_REQUEST_PARAMS", _decode_message(exc)) from exc
    except msgspec.DecodeError as exc:
        raise NowPaymentsApiError(400, "BAD_REQUEST", f"Invalid JSON body: {exc}") from exc


def _decode_control(body: bytes, kind: type[_StructT]) -> _StructT:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.DecodeError as exc:
        raise SandboxControlError(400, str(exc)) from exc


def _on_api_error(
    _request: Request[Any, Any, Any], exc: NowPaymentsApiError
) -> Response[NowPaymentsErrorBody]:
    return Response(
        NowPaymentsErrorBody(status_code=exc.status, code=exc.code, message=exc.message),
        status_code=exc.status,
        headers=exc.headers,
    )


def _on_api_validation_error(
    _request: Request[Any, Any, Any], exc: ValidationException
) -> Response[NowPaymentsErrorBody]:
    body = NowPaymentsErrorBody(status_code=400, code="INVALID_REQUEST_PARAMS", message=exc.detail)
    return Response(body, status_code=400)


_FORBIDDEN_BODY = NowPaymentsErrorBody(
    status_code=403, code="INVALID_API_KEY", message="Invalid api key"
)


# --- routes ------------------------------------------------------------------------------------


def nowpayments_sandbox(config: NowPaymentsSandboxConfig) -> Router:
    """Build a Router simulating the NOWPayments API, with its own in-memory state.

    Raises ``InvalidFaults`` (a ``ValueError``) if ``config.faults`` is invalid or sets a
    Kinguin-only fault.
    """
    sandbox = _NowPaymentsSandbox(config)

    # A closure, not the bound method: Litestar deep-copies layered hooks, and a copied bound
    # method would carry a copy of the sandbox (and of its faults).
    async def admit(request: Request[Any, Any, Any]) -> Response[NowPaymentsErrorBody] | None:
        return await sandbox.admit(request)

    api = Router(
        path="/v1",
        route_handlers=_api_handlers(sandbox),
        before_request=admit,
        exception_handlers={
            NowPaymentsApiError: _on_api_error,
            ValidationException: _on_api_validation_error,
        },
    )
    return Router(
        path="/sandbox/nowpayments",
        route_handlers=[
            api,
            *_control_handlers(sandbox, config.control_check),
            *fault_routes(sandbox.faults, control_guards(config.control_check)),
        ],
        exception_handlers={SandboxControlError: on_control_error},
        tags=["sandbox: nowpayments"],
    )


def _api_handlers(sandbox: _NowPaymentsSandbox) -> list[HTTPRouteHandler]:
    """The vendor API routes; each handler only translates and delegates."""

    @get("/status")
    async def status() -> NowPaymentsStatus:
        return NowPaymentsStatus("OK")

    @post("/invoice", status_code=200)
    async def create_invoice(body: RawBody) -> NowPaymentsInvoice:
        return sandbox.create_invoice(_decode_invoice(body))

    @get("/payment/{payment_id:str}")
    async def get_payment(payment_id: FromPath[str]) -> NowPaymentsPayment:
        return sandbox.payment(payment_id)

    return [status, create_invoice, get_payment]


def _control_handlers(
    sandbox: _NowPaymentsSandbox, check: ControlCheck | None
) -> list[HTTPRouteHandler]:
    """The customer-side routes: the invoice page and the payment simulator (guarded by
    ``check``: with it anyone could mark an order paid)."""

    @get("/payment", media_type=MediaType.HTML)
    async def invoice_page(iid: FromQuery[str | None] = None) -> Response[str]:
        page = sandbox.invoice_page(iid)
        if page is None:
            return Response("<p>Unknown invoice</p>", status_code=404, media_type=MediaType.HTML)
        return Response(page, media_type=MediaType.HTML)

    @post("/payments/{invoice_id:str}/simulate", status_code=200, guards=control_guards(check))
    async def simulate(invoice_id: FromPath[str], body: RawBody) -> NowPaymentsSimulateResult:
        request = _decode_control(body, NowPaymentsSimulateRequest)
        return await sandbox.simulate(invoice_id, request)

    return [invoice_page, simulate]
