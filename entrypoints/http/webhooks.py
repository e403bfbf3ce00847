"""Provider webhooks: NOWPayments IPN and Kinguin ``order.status``.

Each is verified first (a bad signature or secret → 401, nothing stored, one log line with the
source address), then stored exactly once with its effect on the order. Handlers answer fast:
no supplier call happens here, only an append.

Anyone can post here, so the work a caller can cause before proving who it is stays small: a
body over 64 KiB answers 413 before it is read (Litestar checks ``Content-Length`` first, and
counts the bytes of a body sent without it); a malformed signature is refused without hashing;
the HMAC of the raw bytes is tried first, and only when it fails is the body parsed and
re-serialised (the vendor signs a sorted form), within a budget (``SortedChecks``): bodies of
at most 8 KiB, one at a time in a worker thread, 20 a second. JSON of any depth answers 4xx.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from typing import Any

from anyio import CapacityLimiter, to_thread
from litestar import Request, Response, post
from litestar.exceptions import NotAuthorizedException, ValidationException

from adapters import nowpayments_signature
from adapters.kinguin import MalformedWebhook, read_order_status, read_product_update
from adapters.nowpayments import MalformedNotification, read_ipn
from entrypoints.http.deps import InboxDep, SettingsDep
from entrypoints.settings import Settings

log = logging.getLogger(__name__)
WEBHOOK_MAX_BODY_BYTES = 64 * 1024  # DESIGN §6; a real IPN or Kinguin webhook is about 1 KiB
SORTED_CHECKS_AT_ONCE = 1  # bodies re-serialised for their signature at the same time
SORTED_CHECKS_PER_SECOND = 20.0  # measured ≤ 0.6 ms each at 8 KiB: about 1% of a core
SORTED_CHECK_MAX_BYTES = 8 * 1024  # a larger body must be signed as sent (real IPNs: ~1 KiB)
_SORTED_CHECKS = "ipn_sorted_signature_checks"  # the app state key of their budget


@post("/webhooks/nowpayments/ipn", status_code=200, request_max_body_size=WEBHOOK_MAX_BODY_BYTES)
async def nowpayments_ipn(
    request: Request[Any, Any, Any], inbox: InboxDep, settings: SettingsDep
) -> dict[str, str]:
    """Verify an IPN's ``x-nowpayments-sig``, then record it once."""
    raw = await request.body()
    signature = request.headers.get("x-nowpayments-sig")
    if not await ipn_signed(request, ipn_secrets(settings), raw, signature):
        _reject(request, "nowpayments", "bad or missing x-nowpayments-sig")
    try:
        order_id, notice, delivery = read_ipn(raw, {"x-nowpayments-sig": signature or ""})
    except MalformedNotification as bad:
        raise ValidationException(f"unreadable IPN: {bad}") from None
    outcome = await to_thread.run_sync(inbox.payment_notified, order_id, notice, delivery)
    return {"status": "received", "outcome": outcome}


@post("/kinguin/webhooks", status_code=204, request_max_body_size=WEBHOOK_MAX_BODY_BYTES)
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


async def ipn_signed(
    request: Request[Any, Any, Any], secrets: tuple[str, ...], raw: bytes, signature: str | None
) -> bool:
    """Whether the body is signed under one of ``secrets``: as sent (on the loop, one HMAC per
    secret), else in a sorted form, within the app's ``SortedChecks`` budget."""
    if nowpayments_signature.signed_as_sent(secrets, raw, signature):
        return True
    if signature is None or not nowpayments_signature.well_formed(signature):
        return False
    return await _sorted_checks(request).signed(secrets, raw, signature)


class SortedChecks:
    """The budget of sorted-form signature checks, which parse and re-serialise a body an
    anonymous caller chose: bodies of at most ``max_bytes``, one at a time in a worker thread,
    at most ``per_second`` a second (in bursts of as many). A flood of bogus signatures costs at
    most that; a genuine IPN signed as sent never needs a check, and one that does and finds the
    budget spent is refused (401) and sent again by NOWPayments."""

    def __init__(
        self,
        *,
        per_second: float = SORTED_CHECKS_PER_SECOND,
        max_bytes: int = SORTED_CHECK_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._per_second = per_second
        self._max_bytes = max_bytes
        self._clock = clock
        self._tokens = per_second
        self._last = clock()
        self._limiter: CapacityLimiter | None = None

    def admit(self, body_size: int) -> bool:
        """Whether a body of ``body_size`` bytes may be checked now (spending one check)."""
        now = self._clock()
        self._tokens = min(self._per_second, self._tokens + (now - self._last) * self._per_second)
        self._last = now
        if body_size > self._max_bytes or self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    async def signed(self, secrets: tuple[str, ...], raw: bytes, signature: str) -> bool:
        """Whether a sorted form of ``raw`` is signed, if the budget admits the check."""
        if not self.admit(len(raw)):
            return False
        if self._limiter is None:
            self._limiter = CapacityLimiter(SORTED_CHECKS_AT_ONCE)  # made inside the loop
        check = nowpayments_signature.signed_when_sorted
        return await to_thread.run_sync(check, secrets, raw, signature, limiter=self._limiter)


def _sorted_checks(request: Request[Any, Any, Any]) -> SortedChecks:
    """The app's budget of sorted-form checks (kept in its state, made on first use)."""
    state = request.app.state
    checks = state.get(_SORTED_CHECKS)
    if not isinstance(checks, SortedChecks):
        checks = SortedChecks()
        state[_SORTED_CHECKS] = checks
    return checks


def _reject(request: Request[Any, Any, Any], provider: str, reason: str) -> None:
    source = request.client.host if request.client else "unknown"
    log.warning("rejected %s webhook from %s: %s", provider, source, reason)
    raise NotAuthorizedException(reason)
