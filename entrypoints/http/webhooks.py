"""Provider webhooks: NOWPayments IPN and Kinguin ``order.status``.

Each is verified first (a bad signature or secret → 401, nothing stored, one log line with the
source address), then stored exactly once with its effect on the order. Handlers answer fast:
no supplier call happens here, only an append.
"""

from __future__ import annotations

import hmac
import json
import logging
from functools import partial
from typing import Any
from uuid import UUID

from anyio import to_thread
from litestar import Request, Response, post
from litestar.exceptions import NotAuthorizedException, ValidationException

from adapters import nowpayments_signature
from adapters.kinguin import MalformedWebhook, parse_order_status, supplier_notice
from adapters.nowpayments import MalformedNotification, parse_ipn
from application.errors import DuplicateDelivery
from application.fulfillment import Delivery, Fulfillment
from domain.errors import OrderNotFound
from domain.order import order_id_from_reference
from domain.webhooks import kinguin_key, nowpayments_key
from entrypoints.http.deps import FulfillmentDep, SettingsDep

log = logging.getLogger(__name__)


@post("/webhooks/nowpayments/ipn", status_code=200)
async def nowpayments_ipn(
    request: Request[Any, Any, Any],
    fulfillment: FulfillmentDep,
    settings: SettingsDep,
) -> dict[str, str]:
    """Verify an IPN's ``x-nowpayments-sig``, then record it once."""
    raw = await request.body()
    signature = request.headers.get("x-nowpayments-sig")
    if not nowpayments_signature.verify(settings.nowpayments_ipn_secret, raw, signature):
        _reject(request, "nowpayments", "bad or missing x-nowpayments-sig")
    try:
        order_ref, notice = parse_ipn(json.loads(raw))
    except (ValueError, MalformedNotification) as bad:
        raise ValidationException(f"unreadable IPN: {bad}") from None
    delivery = Delivery(
        provider="nowpayments",
        natural_key=nowpayments_key(notice.payment_id, notice.payment_status),
        event_name="ipn",
        body=raw.decode(errors="replace"),
    )
    record = partial(fulfillment.payment_notified, notice=notice, delivery=delivery)
    outcome = await to_thread.run_sync(_record, fulfillment, delivery, _order_id(order_ref), record)
    return {"status": "received", "outcome": outcome}


@post("/kinguin/webhooks", status_code=204)
async def kinguin_webhook(
    request: Request[Any, Any, Any],
    fulfillment: FulfillmentDep,
    settings: SettingsDep,
) -> Response[None]:
    """Check ``X-Event-Secret`` in constant time, then record an ``order.status`` once."""
    raw = await request.body()
    given = request.headers.get("x-event-secret", "")
    if not hmac.compare_digest(given.encode(), settings.kinguin_webhook_secret.encode()):
        _reject(request, "kinguin", "bad or missing X-Event-Secret")
    event_name = request.headers.get("x-event-name", "")
    if event_name != "order.status":
        log.info("kinguin webhook %r accepted and logged: %s", event_name, raw[:500])
        return Response(None, status_code=204)
    try:
        webhook = parse_order_status(raw)
    except MalformedWebhook as bad:
        raise ValidationException(str(bad)) from None
    delivery = Delivery(
        provider="kinguin",
        natural_key=kinguin_key(webhook.orderId, webhook.status, webhook.updatedAt),
        event_name=event_name,
        body=raw.decode(errors="replace"),
    )
    record = partial(
        fulfillment.supplier_notified, notice=supplier_notice(webhook), delivery=delivery
    )
    order_id = order_id_from_reference(webhook.orderExternalId or "")
    await to_thread.run_sync(_record, fulfillment, delivery, order_id, record)
    return Response(None, status_code=204)


ROUTES = [nowpayments_ipn, kinguin_webhook]


def _record(
    fulfillment: Fulfillment,
    delivery: Delivery,
    order_id: UUID | None,
    record: Any,
) -> str:
    """Store the delivery with its effect; an unknown order is stored for admins to see."""
    try:
        if order_id is None:
            return fulfillment.unmatched_delivery(delivery)
        try:
            outcome: str = record(order_id)
        except OrderNotFound:
            return fulfillment.unmatched_delivery(delivery)
    except DuplicateDelivery:
        log.info(
            "%s delivery %s repeated; already recorded", delivery.provider, delivery.natural_key
        )
        return "duplicate"
    return outcome


def _order_id(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


def _reject(request: Request[Any, Any, Any], provider: str, reason: str) -> None:
    source = request.client.host if request.client else "unknown"
    log.warning("rejected %s webhook from %s: %s", provider, source, reason)
    raise NotAuthorizedException(reason)
