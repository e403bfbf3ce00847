"""What an admin does to one order: retry, refund, return its keys (and finish or abandon a
return that never finished), destroy its keys, resume a held purchase, settle payment flags,
resend the delivery e-mail. Each answers the order as it now stands; the domain refuses, with
its reason (409), what the order's state does not allow (``GET /admin/orders/{id}`` says which
are allowed before asking)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import post
from litestar.params import Body, FromPath, JSONBody

from domain.order import Order
from entrypoints.bootstrap import Engine
from entrypoints.http.deps import Caller, EngineDep
from entrypoints.http.views import order_view

Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


def _answer(engine: Engine, order: Order) -> dict[str, Any]:
    """The order as staff read it (``GET /admin/orders/{id}`` without its ``actions``)."""
    return order_view(order, engine.customers.email_of(order), staff=True)


@post("/orders/{order_id:uuid}/retry", sync_to_thread=True, status_code=202)
def retry_order(order_id: FromPath[UUID], request: Caller, engine: EngineDep) -> dict[str, Any]:
    """Send a fulfillment_failed order back to be bought or delivered again."""
    return _answer(engine, engine.fulfillment.retry(order_id, request.user))


class RefundIn(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /admin/orders/{id}/refund``: why, and the payment provider's refund reference."""

    reason: Reason = "refunded by an admin"
    reference: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None


@post("/orders/{order_id:uuid}/refund", sync_to_thread=True, status_code=200)
def refund_order(
    order_id: FromPath[UUID],
    engine: EngineDep,
    request: Caller,
    data: Annotated[RefundIn | None, Body()] = None,
) -> dict[str, Any]:
    """Refund a paid order that was not delivered (``RefundRequested``, ``OrderRefunded``)."""
    body = data or RefundIn()
    order = engine.refunds.refund(
        order_id, request.user, reason=body.reason, reference=body.reference
    )
    return _answer(engine, order)


@post("/orders/{order_id:uuid}/return-keys", sync_to_thread=True, status_code=200)
def return_keys(order_id: FromPath[UUID], engine: EngineDep, request: Caller) -> dict[str, Any]:
    """Return a delivered order's unrevealed keys to Kinguin (within 24 hours), shred them and
    refund the order; refused with the reason otherwise. When Kinguin does not answer (502),
    the return stays under way, for ``finish-return`` or ``abandon-return``."""
    return _answer(engine, engine.refunds.return_keys(order_id, request.user))


@post("/orders/{order_id:uuid}/finish-return", sync_to_thread=True, status_code=200)
def finish_return(order_id: FromPath[UUID], engine: EngineDep, request: Caller) -> dict[str, Any]:
    """Finish a key return that never did: recorded as done when Kinguin's purchase shows it
    took the keys, else sent to Kinguin now."""
    return _answer(engine, engine.refunds.finish_return(order_id, request.user))


class AbandonIn(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /admin/orders/{id}/abandon-return``: why the return is given up."""

    reason: Reason = "abandoned by an admin"


@post("/orders/{order_id:uuid}/abandon-return", sync_to_thread=True, status_code=200)
def abandon_return(
    order_id: FromPath[UUID],
    engine: EngineDep,
    request: Caller,
    data: Annotated[AbandonIn | None, Body()] = None,
) -> dict[str, Any]:
    """Give up a key return that never finished: the keys stay the customer's (refused while
    Kinguin's purchase shows it took them)."""
    reason = (data or AbandonIn()).reason
    return _answer(engine, engine.refunds.abandon_return(order_id, request.user, reason))


@post("/orders/{order_id:uuid}/shred", sync_to_thread=True, status_code=200)
def shred_order(order_id: FromPath[UUID], request: Caller, engine: EngineDep) -> dict[str, Any]:
    """Destroy the order's data key: its keys answer 410 from now on; history and audit stay."""
    return _answer(engine, engine.keys.shred(order_id, request.user))


@post("/orders/{order_id:uuid}/resume", sync_to_thread=True, status_code=202)
def resume_order(order_id: FromPath[UUID], request: Caller, engine: EngineDep) -> dict[str, Any]:
    """Try a purchase held for the supplier balance again now (after a top-up); held again if
    the balance still falls short."""
    return _answer(engine, engine.fulfillment.resume(order_id, request.user))


class ResolveIn(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /admin/orders/{id}/resolve-flags``: how the flagged payment was settled."""

    note: Reason


@post("/orders/{order_id:uuid}/resolve-flags", sync_to_thread=True, status_code=200)
def resolve_flags(
    order_id: FromPath[UUID], request: Caller, engine: EngineDep, data: JSONBody[ResolveIn]
) -> dict[str, Any]:
    """Clear the order's payment flags once settled, saying how (money sent back, amount
    accepted…); the note and who wrote it stay in the order's history."""
    return _answer(engine, engine.fulfillment.resolve_flags(order_id, request.user, data.note))


@post("/orders/{order_id:uuid}/resend-email", sync_to_thread=True, status_code=200)
def resend_email(order_id: FromPath[UUID], request: Caller, engine: EngineDep) -> dict[str, Any]:
    """Send the delivery e-mail of a fulfilled order again, with a fresh 15-minute link."""
    return _answer(engine, engine.notifier.resend(order_id, request.user))


ROUTES = [
    retry_order,
    refund_order,
    return_keys,
    finish_return,
    abandon_return,
    shred_order,
    resume_order,
    resolve_flags,
    resend_email,
]
