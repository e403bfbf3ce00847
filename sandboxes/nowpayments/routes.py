"""The NOWPayments sandbox's routes: the ``/v1`` API, the invoice page and the controls."""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response, Router, get, post
from litestar.exceptions import ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery, RawBody

from sandboxes.control import (
    ControlCheck,
    SandboxControlError,
    control_guards,
    fault_routes,
    on_control_error,
)
from sandboxes.nowpayments.config import NowPaymentsSandboxConfig
from sandboxes.nowpayments.params import (
    decode_control,
    decode_invoice,
    on_api_error,
    on_api_validation_error,
)
from sandboxes.nowpayments.service import NowPaymentsSandbox
from sandboxes.nowpayments.wire import (
    NowPaymentsApiError,
    NowPaymentsErrorBody,
    NowPaymentsInvoice,
    NowPaymentsPayment,
    NowPaymentsSimulateRequest,
    NowPaymentsSimulateResult,
    NowPaymentsStatus,
)

# --- routes ------------------------------------------------------------------------------------


def nowpayments_sandbox(config: NowPaymentsSandboxConfig) -> Router:
    """Build a Router simulating the NOWPayments API, with its own in-memory state.

    Raises ``InvalidFaults`` (a ``ValueError``) if ``config.faults`` is invalid or sets a
    Kinguin-only fault.
    """
    sandbox = NowPaymentsSandbox(config)

    # A closure, not the bound method: Litestar deep-copies layered hooks, and a copied bound
    # method would carry a copy of the sandbox (and of its faults).
    async def admit(request: Request[Any, Any, Any]) -> Response[NowPaymentsErrorBody] | None:
        return await sandbox.admit(request)

    api = Router(
        path="/v1",
        route_handlers=_api_handlers(sandbox),
        before_request=admit,
        exception_handlers={
            NowPaymentsApiError: on_api_error,
            ValidationException: on_api_validation_error,
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


def _api_handlers(sandbox: NowPaymentsSandbox) -> list[HTTPRouteHandler]:
    """The vendor API routes; each handler only translates and delegates."""

    @get("/status")
    async def status() -> NowPaymentsStatus:
        return NowPaymentsStatus("OK")

    @post("/invoice", status_code=200)
    async def create_invoice(body: RawBody) -> NowPaymentsInvoice:
        return sandbox.create_invoice(decode_invoice(body))

    @get("/payment/{payment_id:str}")
    async def get_payment(payment_id: FromPath[str]) -> NowPaymentsPayment:
        return sandbox.payment(payment_id)

    return [status, create_invoice, get_payment]


def _control_handlers(
    sandbox: NowPaymentsSandbox, check: ControlCheck | None
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
        request = decode_control(body, NowPaymentsSimulateRequest)
        return await sandbox.simulate(invoice_id, request)

    return [invoice_page, simulate]
