"""The sandboxes' outgoing calls (Kinguin's webhooks, NOWPayments' IPNs), sent the way a
provider's own servers send them: from a bounded queue, by a few senders over persistent
connections.

Handing every webhook to one HTTP client at once made its pool schedule all of them on every
request (httpcore looks at each queued request and each connection), so a backlog of a thousand
webhooks cost the process more than the shop's own work; in the queue a waiting webhook costs
nothing until a sender takes it. The queue is bounded: past ``QUEUE_SIZE`` a sandbox waits to
add one (its own background task waits, not a request of the engine).

``Callbacks`` is a Litestar plugin: the app that mounts the sandboxes closes it at shutdown,
which stops the senders and fails the webhooks still queued (``CallbacksClosed``, an
``httpx.TransportError``; the sandboxes stop retrying them, and the count is one WARNING line). A
sandbox built without one (a test's router) makes a client per call, which needs no closing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import httpx
from litestar.config.app import AppConfig
from litestar.plugins import InitPlugin

logger = logging.getLogger(__name__)

SENDERS = 8  # webhooks in flight at once, each sender on its own kept-alive connection
QUEUE_SIZE = 10_000  # webhooks waiting for a sender before a sandbox waits to add one
KEEPALIVE_EXPIRY_S = 2.0  # an idle connection is closed before the receiver's uvicorn (5 s) does


class CallbacksClosed(httpx.TransportError):
    """The app is shutting down: the webhook was not sent."""


@dataclass
class _Webhook:
    url: str
    body: bytes
    headers: dict[str, str]
    timeout: float
    answer: asyncio.Future[httpx.Response] = field(repr=False)


class Callbacks(InitPlugin):
    """POSTs to the receivers of webhooks: queued, sent by ``senders`` tasks started on first
    use, over one client whose pool holds one connection per sender."""

    def __init__(
        self, *, keep_connections: bool = True, senders: int = SENDERS, queue_size: int = QUEUE_SIZE
    ) -> None:
        self._keep = keep_connections
        self._senders = senders
        self._queue_size = queue_size
        self._queue: asyncio.Queue[_Webhook] = asyncio.Queue(queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self._closed = False
        self._waiting_for_room = 0  # callers waiting for room in a full queue

    @property
    def closed(self) -> bool:
        """Whether the app is shutting down (a sender of webhooks stops retrying)."""
        return self._closed

    async def post(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> httpx.Response:
        """POST ``body`` to ``url`` (``timeout`` counts from when a sender takes it); raises
        what httpx raises, and ``CallbacksClosed`` once the app is shutting down."""
        if not self._keep:
            async with _client(1) as once:
                return await once.post(url, content=body, headers=headers, timeout=timeout)
        if self._closed:
            raise CallbacksClosed("the sandbox is shutting down")
        self._start()
        webhook = _Webhook(url, body, headers, timeout, asyncio.get_running_loop().create_future())
        self._waiting_for_room += 1
        try:
            await self._queue.put(webhook)
        finally:
            self._waiting_for_room -= 1
        return await webhook.answer

    async def close(self) -> None:
        """Stop the senders, fail what is still queued, and close the connections."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        unsent = await self._drain()
        if unsent:
            logger.warning("sandbox webhooks: %d still queued at shutdown, not sent", unsent)
        self._queue = asyncio.Queue(self._queue_size)  # a restarted app may run on another loop
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _drain(self) -> int:
        """Fail every queued webhook, and those still waiting for room (each taken makes room
        for one, which joins the queue at the loop's next turn); return how many."""
        drained = 0
        while True:
            while not self._queue.empty():
                _fail(self._queue.get_nowait(), CallbacksClosed("the sandbox shut down"))
                drained += 1
            if not self._waiting_for_room:
                return drained
            await asyncio.sleep(0)

    def open(self) -> None:
        """Take webhooks again (an app started after it was shut down, as tests do), with
        senders and a queue of the running loop."""
        self._closed = False
        self._tasks = []
        self._queue = asyncio.Queue(self._queue_size)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Open when the app starts; close when it shuts down."""
        app_config.on_startup.append(self.open)
        app_config.on_shutdown.append(self.close)
        return app_config

    def _start(self) -> None:
        if self._tasks:
            return
        self._client = _client(self._senders)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._send_queued()) for _ in range(self._senders)]

    async def _send_queued(self) -> None:
        """One sender: take the next webhook, POST it, hand its answer (or failure) back."""
        assert self._client is not None  # noqa: S101 - made by _start, before the senders
        while True:
            webhook = await self._queue.get()
            if webhook.answer.done():  # its caller gave up waiting (cancelled)
                continue
            try:
                response = await self._client.post(
                    webhook.url,
                    content=webhook.body,
                    headers=webhook.headers,
                    timeout=webhook.timeout,
                )
            except asyncio.CancelledError:
                _fail(webhook, CallbacksClosed("the sandbox shut down"))
                raise
            except Exception as failure:  # noqa: BLE001 - handed to the caller, who logs it
                _fail(webhook, failure)
            else:
                if not webhook.answer.done():
                    webhook.answer.set_result(response)


def _fail(webhook: _Webhook, failure: BaseException) -> None:
    if not webhook.answer.done():
        webhook.answer.set_exception(failure)


def _client(connections: int) -> httpx.AsyncClient:
    # trust_env=False: a developer's HTTP_PROXY must not capture loopback callbacks.
    limits = httpx.Limits(
        max_connections=connections,
        max_keepalive_connections=connections,
        keepalive_expiry=KEEPALIVE_EXPIRY_S,
    )
    return httpx.AsyncClient(trust_env=False, limits=limits)
