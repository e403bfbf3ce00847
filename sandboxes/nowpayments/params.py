"""Reading the NOWPayments sandbox's request bodies, and answering their errors in
NOWPayments' shape."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import ValidationException

from sandboxes.control import (
    SandboxControlError,
)
from sandboxes.faults import (
    ApiFault,
)
from sandboxes.nowpayments.config import MISSING_FIELD, StructT
from sandboxes.nowpayments.wire import (
    NowPaymentsApiError,
    NowPaymentsErrorBody,
    NowPaymentsInvoiceRequest,
)


def fault_error(fault: ApiFault) -> NowPaymentsApiError:
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
    missing = MISSING_FIELD.search(str(exc))
    return f'"{missing.group("name")}" is required' if missing else str(exc)


def decode_invoice(body: bytes) -> NowPaymentsInvoiceRequest:
    try:
        return msgspec.json.decode(body, type=NowPaymentsInvoiceRequest)
    except msgspec.ValidationError as exc:
        raise NowPaymentsApiError(400, "INVALID_REQUEST_PARAMS", _decode_message(exc)) from exc
    except msgspec.DecodeError as exc:
        raise NowPaymentsApiError(400, "BAD_REQUEST", f"Invalid JSON body: {exc}") from exc


def decode_control(body: bytes, kind: type[StructT]) -> StructT:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.DecodeError as exc:
        raise SandboxControlError(400, str(exc)) from exc


def on_api_error(
    _request: Request[Any, Any, Any], exc: NowPaymentsApiError
) -> Response[NowPaymentsErrorBody]:
    return Response(
        NowPaymentsErrorBody(status_code=exc.status, code=exc.code, message=exc.message),
        status_code=exc.status,
        headers=exc.headers,
    )


def on_api_validation_error(
    _request: Request[Any, Any, Any], exc: ValidationException
) -> Response[NowPaymentsErrorBody]:
    body = NowPaymentsErrorBody(status_code=400, code="INVALID_REQUEST_PARAMS", message=exc.detail)
    return Response(body, status_code=400)


FORBIDDEN_BODY = NowPaymentsErrorBody(
    status_code=403, code="INVALID_API_KEY", message="Invalid api key"
)
