"""Errors as RFC 9457 problem details: the one place where errors become HTTP answers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from uuid import uuid4

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from application.errors import (
    ApplicationError,
    ConcurrencyConflict,
    DeliveryNotFound,
    KeyUnreadable,
    MailerFailed,
    NotAllowed,
    PaymentGatewayError,
    SupplierError,
    TreeBehind,
    UnreadableDelivery,
    VaultFailed,
)
from domain.errors import (
    DomainError,
    InvalidOrder,
    InvalidPricing,
    KeysGone,
    LinkRefused,
    NotEnoughStock,
    NotSellable,
    OrderNotFound,
    PriceChanged,
    ProductNotSold,
    TransitionRefused,
    TreeTooSmall,
)
from domain.event_types import UnknownEventType
from projections.queries import BadQuery, ReadModelRebuilding

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_S = 2  # what a 503 for an outage of the database or Redis asks the client to wait
CLIENT_GONE = "client disconnected prematurely"  # Litestar's 500 when the body never arrives

_STATUS_OF: tuple[tuple[type[Exception], int, str], ...] = (
    (OrderNotFound, 404, "Order not found"),
    (DeliveryNotFound, 404, "Webhook delivery not found"),
    (UnreadableDelivery, 400, "Bad Request"),
    (InvalidOrder, 422, "Invalid order"),
    (InvalidPricing, 422, "Invalid pricing rules"),
    (KeysGone, 410, "Keys destroyed"),
    (LinkRefused, 403, "Download link not valid"),
    (TransitionRefused, 409, "Not possible in the order's current status"),
    (NotAllowed, 403, "Not allowed"),
    (ConcurrencyConflict, 503, "Busy, try again"),
    (PaymentGatewayError, 502, "Payment provider failed"),
    (SupplierError, 502, "Supplier failed"),
    (MailerFailed, 502, "Mail provider failed"),
    (KeyUnreadable, 410, "Keys are no longer readable"),
    (VaultFailed, 503, "Key vault unavailable"),
    (TreeBehind, 503, "Evidence not ready, try again"),
    (TreeTooSmall, 404, "No such proof"),
    (UnknownEventType, 503, "Changed by a newer version of the engine, try again"),
    (ReadModelRebuilding, 503, "Being rebuilt, try again"),
)


def problem(status: int, title: str, detail: str = "", **extra: Any) -> Response[dict[str, Any]]:
    """A problem-details response."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return Response(body, status_code=status, media_type=PROBLEM_JSON)


def on_http_error(request: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    """Litestar's own errors (404 route, 401, 405, 413, …) as problem details; a 5xx of its
    own is a fault of ours, answered like any other (see ``on_fault``)."""
    if error.status_code >= HTTP_500_INTERNAL_SERVER_ERROR:
        if error.detail == CLIENT_GONE:
            # A client that gave up (its timeout, during an outage) before its body arrived:
            # no fault of ours, and nobody is left to read an answer.
            log.warning("%s %s: the client hung up before sending its body; not answered",
                        request.method, request.url.path)  # fmt: skip
            return problem(400, "Bad Request", "the request body never arrived")
        return on_fault(request, error)
    extra: dict[str, Any] = {"instance": request.url.path}
    if isinstance(error, ValidationException) and error.extra:
        extra["errors"] = error.extra
    title = _reason(error.status_code)
    detail = error.detail if error.detail and error.detail != title else ""
    response = problem(error.status_code, title, detail, **extra)
    if error.headers:
        response.headers.update(error.headers)
    return response


def on_not_sellable(request: Request[Any, Any, Any], error: NotSellable) -> Response[Any]:
    """The catalog refused a line; nothing was created. 422 for a product that does not exist,
    409 for one that cannot be sold as asked (with the current price, or the stock left)."""
    extra: dict[str, Any] = {"instance": request.url.path, "product_id": error.product_id}
    if isinstance(error, PriceChanged):
        extra |= {"current_price": str(error.current_price), "currency": "EUR"}
        return problem(409, "Price changed", str(error), **extra)
    if isinstance(error, NotEnoughStock):
        return problem(409, "Not enough stock", str(error), available=error.available, **extra)
    if isinstance(error, ProductNotSold) and not error.known:
        return problem(422, "Unknown product", str(error), **extra)
    return problem(409, "Product not for sale", str(error), **extra)


def on_bad_query(request: Request[Any, Any, Any], error: BadQuery) -> Response[Any]:
    """A list asked for with a cursor this API did not hand out, or a value no column holds."""
    return problem(400, "Bad Request", str(error), instance=request.url.path)


def on_domain_error(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    """Domain and application refusals mapped to their status."""
    if isinstance(error, NotSellable):
        return on_not_sellable(request, error)
    for kind, status, title in _STATUS_OF:
        if isinstance(error, kind):
            return problem(status, title, str(error), instance=request.url.path)
    return on_fault(request, error)


def on_recursion_error(request: Request[Any, Any, Any], error: RecursionError) -> Response[Any]:
    """A JSON decoder gave up on a request body nested deeper than the interpreter's recursion
    limit: 400, and one WARNING line. Any other ``RecursionError`` is a bug of ours."""
    if not _while_decoding(error):
        return on_fault(request, error)
    log.warning("%s %s answered 400: the body is nested too deeply to decode",
                request.method, request.url.path)  # fmt: skip
    return problem(400, "Bad Request", "the body is nested too deeply", instance=request.url.path)


def _while_decoding(error: RecursionError) -> bool:
    """Whether the error came from a JSON decoder. The C decoders say what they were doing
    (msgspec: "... while deserializing an object"; the standard library: "... while decoding a
    JSON array ..."), which a runaway recursion in Python code never does. Measured: a decoder
    gives up in about 50 µs at the recursion limit, whatever the body's length (a 1 MiB body of
    brackets too), less than a mere byte count over that body takes (350 µs): cheaper than any
    depth check before decoding."""
    text = str(error)
    return "while deserializing" in text or "while decoding" in text


def on_unavailable(request: Request[Any, Any, Any], service: str, line: str) -> Response[Any]:
    """The database, Redis or the key vault is unreachable (a restart, an outage): one WARNING
    line, and a 503 the client may send again after ``Retry-After`` seconds."""
    log.warning(
        "%s %s answered 503: %s; the client may retry in %d s",
        request.method, request.url.path, line, RETRY_AFTER_S,
    )  # fmt: skip
    response = problem(
        503,
        "Service unavailable",
        f"the {service} is unavailable for a moment; try again",
        instance=request.url.path,
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def on_fault(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    """Anything else: logged with its trace under a request id, answered with that id and
    nothing of the exception's own text."""
    request_id = uuid4().hex
    log.error(
        "unhandled error on %s %s (request %s)",
        request.method, request.url.path, request_id, exc_info=error,
    )  # fmt: skip
    return problem(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "Internal server error",
        f"quote request id {request_id} when reporting this",
        instance=request.url.path,
        request_id=request_id,
    )


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


Outage = Callable[[BaseException], tuple[str, str] | None]
"""Tells an outage from a fault: what is unavailable and a line saying so, or None (the app's
builder hands in ``Engine.outage``)."""


def exception_handlers(outage: Outage) -> dict[int | type[Exception], Any]:
    """The app's handlers: the errors of clients, the domain and the application as problem
    details; an outage of a service as a 503 (``on_unavailable``); anything else as a fault."""

    def on_unexpected(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
        found = outage(error)
        if found is not None:
            return on_unavailable(request, *found)
        return on_fault(request, error)

    return {
        HTTPException: on_http_error,
        DomainError: on_domain_error,
        ApplicationError: on_domain_error,
        UnknownEventType: on_domain_error,
        ReadModelRebuilding: on_domain_error,
        BadQuery: on_bad_query,
        RecursionError: on_recursion_error,
        Exception: on_unexpected,
    }
