"""Provider webhooks: NOWPayments IPN and Kinguin ``order.status``.

Each is verified first (a bad signature or secret → 401, nothing stored, one log line with the
source address), then stored exactly once with its effect on the order. Handlers answer fast:
no supplier call happens here, only an append.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from anyio import to_thread
from litestar import Request, Response, post
from litestar.exceptions import NotAuthorizedException, ValidationException

from adapters import nowpayments_signature
from adapters.kinguin import MalformedWebhook, read_order_status, read_product_update
from adapters.nowpayments import MalformedNotification, read_ipn
from entrypoints.http.deps import InboxDep, SettingsDep
from entrypoints.settings import Settings

log = logging.getLogger(__name__)


@post("/webhooks/nowpayments/ipn", status_code=200)
async def nowpayments_ipn(
    request: Request[Any, Any, Any], inbox: InboxDep, settings: SettingsDep
) -> dict[str, str]:
    """Verify an IPN's ``x-nowpayments-sig``, then record it once."""
    raw = await request.body()
    signature = request.headers.get("x-nowpayments-sig")
    if not any(
        nowpayments_signature.verify(secret, raw, signature) for secret in ipn_secrets(settings)
    ):
        _reject(request, "nowpayments", "bad or missing x-nowpayments-sig")
    try:
        order_id, notice, delivery = read_ipn(raw, {"x-nowpayments-sig": signature or ""})
    except MalformedNotification as bad:
        raise ValidationException(f"unreadable IPN: {bad}") from None
    outcome = await to_thread.run_sync(inbox.payment_notified, order_id, notice, delivery)
    return {"status": "received", "outcome": outcome}


@post("/kinguin/webhooks", status_code=204)
async def kinguin_webhook(
    request: Request[Any, Any, Any], inbox: InboxDep, settings: SettingsDep
) -> Response[None]:
    """Check ``X-Event-Secret`` in constant time, then record an ``order.status`` or a
    ``product.update`` once."""
    raw = await request.body()
    given = request.headers.get("x-event-secret", "")
    if not hmac.compare_digest(given.encode(), settings.kinguin_webhook_secret.encode()):
        _reject(request, "kinguin", "bad or missing X-Event-Secret")
    event_name = request.headers.get("x-event-name", "")
    if event_name == "product.update":
        try:
            _, delivery = read_product_update(raw, {"x-event-name": event_name})
        except MalformedWebhook as bad:
            raise ValidationException(str(bad)) from None
        await to_thread.run_sync(inbox.product_notified, delivery)
        return Response(None, status_code=204)
    if event_name != "order.status":
        log.info("kinguin webhook %r accepted and logged: %s", event_name, raw[:500])
        return Response(None, status_code=204)
    try:
        order_id, notice, delivery = read_order_status(raw, {"x-event-name": event_name})
    except MalformedWebhook as bad:
        raise ValidationException(str(bad)) from None
    await to_thread.run_sync(inbox.supplier_notified, order_id, notice, delivery)
    return Response(None, status_code=204)


ROUTES = [nowpayments_ipn, kinguin_webhook]


def ipn_secrets(settings: Settings) -> tuple[str, ...]:
    """NOWPayments' IPN secret, and the mounted sandbox's own while it is mounted."""
    if "nowpayments" in settings.sandboxes:
        return (settings.nowpayments_ipn_secret, settings.sandbox_ipn_secret)
    return (settings.nowpayments_ipn_secret,)


def _reject(request: Request[Any, Any, Any], provider: str, reason: str) -> None:
    source = request.client.host if request.client else "unknown"
    log.warning("rejected %s webhook from %s: %s", provider, source, reason)
    raise NotAuthorizedException(reason)
