"""Admin and auditor routes: lists from the projections, webhook replay, order retry, key audit
and the projections' own state (with rebuild, retry and skip)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Router, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, PathParameter

from domain.actions import admin_actions, attention
from domain.order import Order
from domain.order import Status as OrderStatus
from domain.refunds import refundable_amount
from entrypoints.bootstrap import Engine
from entrypoints.http import catalog, order_actions
from entrypoints.http.deps import Caller, EngineDep
from entrypoints.http.ops import admin_only
from entrypoints.http.schema import Cursor, Limit, parse_instant, query, text_filter, time_filter
from entrypoints.http.views import order_view
from projections.catalog import NAMES
from projections.queries import OrderSearch, Page, check_text
from projections.runner import ProjectionRunner
from projections.state import ProjectionState

Provider = Literal["nowpayments", "kinguin"]
Period = Literal["hour", "day"]
PROJECTION_ACTIONS = ("rebuild", "cancel", "retry", "skip")

OrderIdFilter = Annotated[UUID | None, query("only this order's entries")]


@get("/orders", sync_to_thread=True)
def list_orders(
    engine: EngineDep,
    *,
    status: Annotated[OrderStatus | None, query("only orders in this status")] = None,
    order_id: OrderIdFilter = None,
    customer: Annotated[str | None, text_filter("only this customer's orders (their sub)")] = None,
    email: Annotated[
        str | None, text_filter("only orders placed with this e-mail address (any case)")
    ] = None,
    product: Annotated[str | None, text_filter("only orders with this product id")] = None,
    flagged: Annotated[
        bool, query("only orders with a payment flag, held for the balance, or returning keys")
    ] = False,
    created_after: Annotated[str | None, time_filter("placed at or after (ISO 8601)")] = None,
    created_before: Annotated[str | None, time_filter("placed before (ISO 8601)")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Orders, most recently changed first, matching every filter given
    (``?status=fulfillment_failed`` for the ones needing a hand). The e-mail search compares a
    keyed digest of the address: no address is kept in clear to search it."""
    search = OrderSearch(
        status=status.value if status else None,
        order_id=_text(order_id),
        customer=customer,
        owners=_with_email(engine, email) if email else None,
        product=product,
        flagged=flagged,
        created_after=parse_instant(created_after, "created_after")
        if created_after is not None
        else None,
        created_before=parse_instant(created_before, "created_before")
        if created_before is not None
        else None,
    )
    return _listed(engine.read_models.orders(search, limit=limit, cursor=cursor))


def _with_email(engine: Engine, email: str) -> tuple[str, ...]:
    """The customers who used the address (compared as a keyed digest)."""
    check_text("email", email)
    return engine.read_models.customers_with_email(engine.customers.email_lookup(email))


@get("/orders/{order_id:uuid}", sync_to_thread=True)
def order_detail(order_id: FromPath[UUID], request: Caller, engine: EngineDep) -> dict[str, Any]:
    """One order as staff see it, with what an admin may do with it now: ``actions`` maps
    ``refund``, ``return_keys``, ``shred`` and ``retry`` to null when allowed, else to why
    not; ``refund_amount`` is what a refund, or a return of the keys, gives back."""
    order = engine.fulfillment.order(order_id, request.user)
    return order_view(order, engine.customers.email_of(order), staff=True) | {
        "actions": admin_actions(order, engine.clock.now()),
        "refund_amount": str(refundable_amount(order)),
        "new_costs": _new_costs(engine, order),
    }


def _new_costs(engine: Engine, order: Order) -> dict[str, str | None] | None:
    """For an order that failed on a moved supplier price: what Kinguin charges now for each
    of its products (null: no longer offered), which a retry accepts. Else None."""
    if attention(order) != "price_changed":
        return None
    costs = engine.fulfillment.current_costs(order)
    return {product: None if cost is None else str(cost) for product, cost in costs.items()}


@get("/attention", sync_to_thread=True)
def needs_attention(
    engine: EngineDep, *, limit: Limit = 50, cursor: Cursor = None
) -> dict[str, Any]:
    """Orders that wait for a person, most recently changed first: failed (``kind``
    ``price_changed`` or ``failed``), held for the supplier's balance (``held``) or with a
    flagged payment (``flagged``), each with the ``actions`` and ``refund_amount`` of its page
    (``GET /admin/orders/{id}``)."""
    page = engine.read_models.needing_attention(limit=limit, cursor=cursor)
    now = engine.clock.now()
    items = []
    for row in page.items:
        order = _ORDER.decode(row.pop("state"))
        items.append(
            row
            | {
                "kind": attention(order),
                "actions": admin_actions(order, now),
                "refund_amount": str(refundable_amount(order)),
            }
        )
    return {"items": items, "next_cursor": page.next_cursor}


_ORDER = msgspec.json.Decoder(Order)


@post("/customers/{customer:str}/erase", sync_to_thread=True, status_code=200)
def erase_customer(customer: FromPath[str], engine: EngineDep, request: Caller) -> dict[str, Any]:
    """Forget a customer's personal data: their orders' e-mail addresses become unreadable for
    good; the orders and their history stay."""
    erased = engine.customers.erase(customer, request.user)
    return {"customer": customer, "erased": True, "already_erased": not erased}


@get("/reservations", sync_to_thread=True)
def list_reservations(
    engine: EngineDep,
    *,
    status: Annotated[
        str | None, text_filter("Kinguin's status (processing, completed, canceled, refunded)")
    ] = None,
    order_id: OrderIdFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Kinguin purchases, newest first; ``?status=`` filters on Kinguin's status."""
    return _listed(
        engine.read_models.reservations(
            status=status, order_id=_text(order_id), limit=limit, cursor=cursor
        )
    )


@get("/webhook-logs", sync_to_thread=True)
def list_webhook_logs(
    engine: EngineDep,
    *,
    provider: Annotated[Provider | None, query("only this provider's deliveries")] = None,
    outcome: Annotated[str | None, text_filter('the outcome, e.g. "unknown order"')] = None,
    order_id: OrderIdFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Stored webhook deliveries, newest first."""
    return _listed(
        engine.read_models.webhook_logs(
            provider=provider,
            outcome=outcome,
            order_id=_text(order_id),
            limit=limit,
            cursor=cursor,
        )
    )


@get("/webhook-logs/{delivery_id:uuid}", sync_to_thread=True)
def get_webhook_log(delivery_id: FromPath[UUID], engine: EngineDep) -> dict[str, Any]:
    """One delivery with its body."""
    found = engine.read_models.webhook_log(delivery_id)
    if found is None:
        raise NotFoundException(f"no webhook delivery {delivery_id}")
    return found


@post("/webhook-logs/{delivery_id:uuid}/replay", sync_to_thread=True, status_code=200)
def replay_webhook(delivery_id: FromPath[UUID], engine: EngineDep) -> dict[str, str]:
    """Re-run the handling of a stored delivery; a repeat changes nothing."""
    return {"delivery_id": str(delivery_id), "outcome": engine.inbox.replay(delivery_id)}


@get("/key-audit/{order_id:uuid}", sync_to_thread=True)
def key_audit(order_id: FromPath[UUID], engine: EngineDep) -> dict[str, Any]:
    """Every read of an order's keys: who, when, from where, how."""
    return {"order_id": str(order_id), "accesses": engine.read_models.key_audit(order_id)}


@get("/dashboard", sync_to_thread=True)
def dashboard(
    engine: EngineDep,
    by: Annotated[Period, query("one point per hour (the last 48) or day (30)")] = "hour",
) -> dict[str, Any]:
    """Orders by status; sales, margin, failures, fulfilment times and the supplier balance,
    all-time and as charts (from the ``sales`` read model); each projection's state."""
    head = engine.store.head()
    return {
        **engine.read_models.dashboard(by, engine.clock.now()),
        "projections": [projection_view(r.state(), head) for r in engine.projections.values()],
    }


@get("/projections", sync_to_thread=True)
def list_projections(engine: EngineDep) -> list[dict[str, Any]]:
    """Each projection's position, the head of the log, lag and state."""
    head = engine.store.head()
    return [projection_view(runner.state(), head) for runner in engine.projections.values()]


@post("/projections/{name:str}/{action:str}", sync_to_thread=True, status_code=202)
def control_projection(
    name: Annotated[str, PathParameter(schema_extra={"enum": list(NAMES)})],
    action: Annotated[str, PathParameter(schema_extra={"enum": list(PROJECTION_ACTIONS)})],
    engine: EngineDep,
) -> dict[str, Any]:
    """``rebuild`` (a fresh copy beside the live one, swapped when caught up; asked while one
    runs, it joins that one), ``cancel`` (a rebuild in progress), ``retry`` or ``skip`` (a
    failed event). Answers the state the command left, read and changed in one transaction."""
    runner = _runner(engine.projections, name)
    actions: dict[str, Callable[[], ProjectionState]] = {
        "rebuild": runner.request_rebuild,
        "cancel": runner.cancel_rebuild,
        "retry": runner.retry,
        "skip": runner.skip,
    }
    if action not in actions:
        raise NotFoundException(f"no action {action!r}; use rebuild, cancel, retry or skip")
    return projection_view(actions[action](), engine.store.head())


def projection_view(state: ProjectionState, head: int) -> dict[str, Any]:
    """A projection's state as admins read it."""
    lag = max(head - state.position, 0)
    view: dict[str, Any] = {
        "name": state.name,
        "version": state.generation,
        "position": state.position,
        "head": head,
        "lag_events": lag,
        "lag_seconds": _lag_seconds(state) if lag else 0.0,
        "state": "failed" if state.state == "failed" else "live",
    }
    if state.state == "failed":
        view["error"] = {"position": state.error_position, "message": state.error}
    elif state.error:
        view["last_rebuild_error"] = state.error
    elif state.rebuild_generation is not None:
        done, target = state.rebuild_position or 0, max(state.rebuild_target or 0, 1)
        view["state"] = "rebuilding"
        view["rebuild"] = {
            "version": state.rebuild_generation,
            "position": done,
            "target": state.rebuild_target,
            "progress": min(done / target, 1.0),
        }
    return view


def _lag_seconds(state: ProjectionState) -> float:
    if state.last_event_at is None:
        return 0.0
    return max((datetime.now(UTC) - datetime.fromisoformat(state.last_event_at)).total_seconds(), 0)


def _runner(runners: dict[str, ProjectionRunner], name: str) -> ProjectionRunner:
    if name not in runners:
        raise NotFoundException(f"no projection {name!r}; known: {', '.join(runners)}")
    return runners[name]


def _text(order_id: UUID | None) -> str | None:
    return None if order_id is None else str(order_id)


def _listed(page: Page) -> dict[str, Any]:
    return {"items": page.items, "next_cursor": page.next_cursor}


ADMIN = Router(
    path="/admin",
    guards=[admin_only],
    route_handlers=[
        list_orders,
        order_detail,
        needs_attention,
        *order_actions.ROUTES,
        erase_customer,
        list_reservations,
        list_webhook_logs,
        get_webhook_log,
        replay_webhook,
        key_audit,
        dashboard,
        list_projections,
        control_projection,
        *catalog.ADMIN_ROUTES,
    ],
)
