"""What every simulated vendor shares: its front door (the API key checked in constant time,
then the injected faults) and its outbox (webhooks sent as the drop and duplicate faults say,
each POSTed through the app's callbacks client)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from litestar import Request, Response

from sandboxes.callbacks import Callbacks, CallbacksClosed
from sandboxes.faults import ApiFault, FaultSwitch

T = TypeVar("T")


class ApiGate:
    """The API's front door: ``refusal`` without the key in ``header``, then the faults."""

    def __init__(
        self,
        *,
        key: str,
        header: str,
        faults: FaultSwitch,
        timeout_s: float,
        refusal: Callable[[], Response[Any]],
        fault_error: Callable[[ApiFault], Exception],
    ) -> None:
        self._key = key.encode()
        self._header = header
        self._faults = faults
        self._timeout_s = timeout_s
        self._refusal = refusal
        self._fault_error = fault_error

    def authorized(self, given: str | None) -> bool:
        """Whether ``given`` is the configured key (compared in constant time)."""
        return given is not None and hmac.compare_digest(given.encode(), self._key)

    async def admit(self, request: Request[Any, Any, Any]) -> Response[Any] | None:
        """The refusal without the key; else the injected faults, which raise; else None."""
        if not self.authorized(request.headers.get(self._header)):
            return self._refusal()
        fault = await self._faults.before_api_call(self._timeout_s)
        if fault is not None:
            raise self._fault_error(fault)
        return None


async def send_copies(
    faults: FaultSwitch, log: logging.Logger, what: str, send: Callable[[], Awaitable[T]]
) -> list[T]:
    """Send a webhook as many times as the duplicate fault says, or not at all when the drop
    fault drops it (one INFO line); what each copy's ``send`` answered."""
    if faults.drop_webhook():
        log.info("%s dropped by fault", what)
        return []
    return [await send() for _ in range(faults.webhook_copies())]


async def post_callback(
    callbacks: Callbacks,
    url: str,
    body: bytes,
    *,
    headers: dict[str, str],
    timeout_s: float,
    log: logging.Logger,
    what: str,
) -> httpx.Response | None:
    """POST one webhook; the receiver's answer (a failure status logged as a WARNING line), or
    None when it cannot be reached (the same) or the app is shutting down."""
    try:
        response = await callbacks.post(url, body, headers, timeout_s)
    except CallbacksClosed:
        return None  # shutting down: counted by the callbacks' close
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        log.warning("%s to %s failed: %r", what, url, exc)
        return None
    if not response.is_success:
        log.warning("%s to %s answered %s", what, url, response.status_code)
    return response
