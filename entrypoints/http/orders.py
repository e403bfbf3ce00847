"""Customer routes: orders, payments and fulfilment status. Handlers translate HTTP to use-case
calls and nothing more."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import get, post
from litestar.exceptions import TooManyRequestsException
from litestar.params import FromPath, JSONBody

from application.fulfillment import Fulfillment
from application.orders import Viewer
from domain.catalog import LineRequest
from domain.errors import OrderNotFound
from domain.events import DomainEvent
from domain.order import fold
from entrypoints.bootstrap import Engine
from entrypoints.http.audit import AUDITOR
from entrypoints.http.customer_views import customer_entry
from entrypoints.http.deps import Caller, EngineDep
from entrypoints.http.schema import DIGITS_PATTERN, parse_instant, query
from entrypoints.http.views import (
    OrderIn,
    PaymentIn,
    history_view,
    is_number,
    order_view,
    payment_view,
    status_view,
)

MAX_VERSION = 2**31 - 1  # beyond any order's history; keeps the database's integer in range
_VERSION_DIGITS = len(str(MAX_VERSION))

AsOf = Annotated[
    str | None,
    query(
        "a version (events 1 to N; 0 counts as 1, past the last gives the current state) or "
        "an ISO 8601 / RFC 3339 time (without an offset it is UTC; before the order existed: "
        "404); anything else answers 400",
        one_of=[
            {"type": "string", "pattern": DIGITS_PATTERN},
            {"type": "string", "format": "date-time"},
        ],
    ),
]


@post("/orders", sync_to_thread=True)
def create_order(data: JSONBody[OrderIn], engine: EngineDep, request: Caller) -> dict[str, Any]:
    """Place an order for the caller, priced by the shop from the catalog (rate-limited per
    user and per address)."""
    viewer = request.user
    _limit(engine, "order", viewer, request)
    lines = [
        LineRequest(
            product_id=i.product_id,
            quantity=i.quantity,
            offer_id=i.offer_id,
            shown_price=i.unit_price,
        )
        for i in data.items
    ]
    order = engine.fulfillment.place_order(
        viewer, email=data.email, currency=data.currency, lines=lines
    )
    return order_view(order, data.email, staff=viewer.is_admin)


@get("/orders/{order_id:uuid}", sync_to_thread=True)
def get_order(
    order_id: FromPath[UUID], engine: EngineDep, request: Caller, as_of: AsOf = None
) -> dict[str, Any]:
    """The order now, or as it was at a version or instant (``?as_of=``)."""
    viewer = request.user
    events = _history_as_of(engine.fulfillment, order_id, viewer, as_of)
    order = fold(events)
    return order_view(order, engine.customers.email_of(order), staff=viewer.is_admin)


@get("/orders/{order_id:uuid}/history", opt=AUDITOR, sync_to_thread=True)
def get_history(
    order_id: FromPath[UUID], engine: EngineDep, request: Caller, as_of: AsOf = None
) -> list[dict[str, Any]]:
    """The order's events, oldest first (``?as_of=`` cuts the list there)."""
    viewer = request.user
    history = history_view(_history_as_of(engine.fulfillment, order_id, viewer, as_of))
    return history if viewer.reads_every_order else [customer_entry(e, viewer.sub) for e in history]


@post("/payments/create", sync_to_thread=True)
def create_payment(data: JSONBody[PaymentIn], engine: EngineDep, request: Caller) -> dict[str, Any]:
    """Get the caller's order an invoice (the same one when asked again); rate-limited like
    orders, as each new invoice is a call to NOWPayments."""
    viewer = request.user
    _limit(engine, "invoice", viewer, request)
    order = engine.fulfillment.create_payment(data.order_id, viewer)
    return payment_view(order)


@get("/fulfillment/{order_id:uuid}/status", sync_to_thread=True)
def fulfillment_status(
    order_id: FromPath[UUID], engine: EngineDep, request: Caller
) -> dict[str, Any]:
    """Status and delivered keys (references only)."""
    return status_view(engine.fulfillment.order(order_id, request.user))


ROUTES = [
    create_order,
    get_order,
    get_history,
    create_payment,
    fulfillment_status,
]


def _limit(engine: Engine, action: str, viewer: Viewer, request: Caller) -> None:
    """429 with ``Retry-After`` once the caller, or their address, did this too often."""
    per_user, per_address = engine.order_limits
    address = request.client.host if request.client else "unknown"
    wait = max(
        per_user.allow(f"{action}:user:{viewer.sub}"),
        per_address.allow(f"{action}:ip:{address}"),
    )
    if wait:
        raise TooManyRequestsException(
            f"too many {action} requests; try again shortly",
            headers={"Retry-After": str(int(wait) + 1)},
        )


def _history_as_of(
    fulfillment: Fulfillment,
    order_id: UUID,
    viewer: Viewer,
    as_of: str | None,
) -> list[DomainEvent]:
    if as_of is None:
        return fulfillment.history(order_id, viewer)
    if is_number(as_of):
        digits = as_of.lstrip("0") or "0"
        version = MAX_VERSION if len(digits) > _VERSION_DIGITS else int(digits)
        version = min(max(version, 1), MAX_VERSION)
        return fulfillment.history(order_id, viewer, until_version=version)
    instant = parse_instant(as_of, "as_of", "a version number or an ISO 8601 time")
    events = [e for e in fulfillment.history(order_id, viewer) if e.timestamp <= instant]
    if not events:
        raise OrderNotFound(f"order {order_id} did not exist at {as_of}")
    return events
