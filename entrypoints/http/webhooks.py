"""Provider webhooks: NOWPayments IPN and Kinguin ``order.status``.

Each is verified first (a bad signature or secret → 401, nothing stored, one log line with the
source address), then stored exactly once with its effect on the order. Handlers answer fast:
no supplier call happens here, only an append.

Anyone can post here, so the work a caller can cause before proving who it is stays small: a
body over 64 KiB answers 413 before it is read (Litestar checks ``Content-Length`` first, and
counts the bytes of a body sent without it); a malformed signature is refused without hashing;
the HMAC of the raw bytes is tried first, and only when it fails is the body parsed and
re-serialised (the vendor signs a sorted form): bodies of at most 8 KiB shaped like an IPN (a
JSON object of a few dozen fields, nested three deep at most), one at a time in a worker thread.
JSON of any depth answers 4xx.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from anyio import CapacityLimiter, to_thread
from litestar import Request, Response, post
from litestar.exceptions import NotAuthorizedException

from application.webhooks import SignatureCheck
from entrypoints.http.deps import EngineDep

log = logging.getLogger(__name__)
WEBHOOK_MAX_BODY_BYTES = 64 * 1024  # DESIGN §6; a real IPN or Kinguin webhook is about 1 KiB
SORTED_CHECKS_AT_ONCE = 1  # bodies re-serialised for their signature at the same time
_SORTED_CHECKS = "ipn_sorted_signature_checks"  # the app state key of their thread slot


@post("/webhooks/nowpayments/ipn", status_code=200, request_max_body_size=WEBHOOK_MAX_BODY_BYTES)
async def nowpayments_ipn(request: Request[Any, Any, Any], engine: EngineDep) -> dict[str, str]:
    """Verify an IPN's ``x-nowpayments-sig``, then record it once."""
    raw = await request.body()
    signature = request.headers.get("x-nowpayments-sig")
    if not await ipn_signed(request, engine.ipn_signatures, raw, signature):
        _reject(request, "nowpayments", "bad or missing x-nowpayments-sig")
    headers = {"x-nowpayments-sig": signature or ""}
    outcome = await to_thread.run_sync(engine.inbox.receive_ipn, raw, headers)
    return {"status": "received", "outcome": outcome}


@post("/kinguin/webhooks", status_code=204, request_max_body_size=WEBHOOK_MAX_BODY_BYTES)
async def kinguin_webhook(request: Request[Any, Any, Any], engine: EngineDep) -> Response[None]:
    """Check ``X-Event-Secret`` in constant time, then record an ``order.status`` or a
    ``product.update`` once."""
    raw = await request.body()
    given = request.headers.get("x-event-secret", "")
    secret = engine.settings.kinguin_webhook_secret
    if not hmac.compare_digest(given.encode(), secret.encode()):
        _reject(request, "kinguin", "bad or missing X-Event-Secret")
    event_name = request.headers.get("x-event-name", "")
    headers = {"x-event-name": event_name}
    await to_thread.run_sync(engine.inbox.receive_kinguin, event_name, raw, headers)
    return Response(None, status_code=204)


ROUTES = [nowpayments_ipn, kinguin_webhook]


async def ipn_signed(
    request: Request[Any, Any, Any], check: SignatureCheck, raw: bytes, signature: str | None
) -> bool:
    """Whether the body is signed: as sent (on the loop, one HMAC per secret), else in a sorted
    form (in a worker thread, one check at a time, and only for small, well-formed signatures
    over IPN-shaped bodies: ``SignatureCheck``)."""
    if check.as_sent(raw, signature):
        return True
    if not check.worth_sorting(raw, signature):
        return False
    limiter = _sorted_checks(request)
    return await to_thread.run_sync(check.when_sorted, raw, signature, limiter=limiter)


def _sorted_checks(request: Request[Any, Any, Any]) -> CapacityLimiter:
    """The app's one worker-thread slot for sorted-form checks (made on first use, inside the
    event loop), so that a flood of them takes one thread, not the pool."""
    state = request.app.state
    limiter = state.get(_SORTED_CHECKS)
    if not isinstance(limiter, CapacityLimiter):
        limiter = CapacityLimiter(SORTED_CHECKS_AT_ONCE)
        state[_SORTED_CHECKS] = limiter
    return limiter


def _reject(request: Request[Any, Any, Any], provider: str, reason: str) -> None:
    source = request.client.host if request.client else "unknown"
    log.warning("rejected %s webhook from %s: %s", provider, source, reason)
    raise NotAuthorizedException(reason)
