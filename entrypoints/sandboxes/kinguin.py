"""Kinguin eCommerce API sandbox: an in-memory simulator served under ``/sandbox/kinguin``.

It mirrors the documented API (EXTERNAL_APIS §1) so the Kinguin adapter needs only a base URL:

- every route checks ``X-Api-Key`` and answers Kinguin's exact 401 body otherwise;
- ``POST /v2/order`` answers 201 with a ``processing`` Order; after ``delay_s`` the order is
  ``completed``, its keys ``DELIVERED``, and an ``order.status`` webhook (plain ``X-Event-Secret``,
  no signature, as documented) goes to the configured URL;
- ``GET /v1/order/{id}``, ``GET /v1/order`` (search, e.g. by ``orderExternalId``),
  ``GET /v2/order/{id}/keys`` (bare array, delivered keys only, paginated), ``GET /v1/balance``.

Like the real service it sends one ``order.status`` webhook per status change: ``processing`` as
soon as the order exists (``updatedAt`` = its creation time), then ``completed``; each is retried
briefly while the receiver fails.

Faults (``entrypoints.sandboxes.faults``; ``GET``/``POST /faults``, no API key) make it hostile on
demand. After the key check every API request first waits ``latency_ms``, then may hang
``timeout_s`` and answer 504 (kind ``HttpClient``), else answer 429 (kind ``Http``, with
``Retry-After``), else 500 (kind ``Error``); a faulted request changes nothing. ``out_of_stock``
product ids make ``POST /v2/order`` answer 400 ``ProductUnavailable``; ``duplicate_external_id``
creates the order but answers 400 "orderExternalId already used", as a retry after a lost 201 would
(only for requests carrying an ``orderExternalId``: without one no client could recover).
Webhooks may be dropped (``drop_webhook_rate``, logged at INFO), sent twice
(``duplicate_webhooks``) or reordered (``reorder_webhooks``: ``completed`` first, then a stale
``processing`` whose ``updatedAt`` is older; decided when the order is placed).

Errors use Kinguin's body ``{kind, status, title, detail, path, method, trace, timestamp}``.
A reused ``orderExternalId`` answers 400 ``ConstraintViolation`` "orderExternalId already used".
Kinguin documents the field as the duplicate guard but not its answer; the sandbox takes the status
of Kinguin's own ``ConstraintViolation`` example (400) over the 422 some third-party notes claim.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import itertools
import logging
import random
import re
import secrets
import string
import zlib
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Annotated, Any, Literal

import httpx
import msgspec
from litestar import Request, Response, Router, get, post
from litestar.exceptions import ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery, QueryParameter, RawBody

from entrypoints.sandboxes.control import (
    SandboxControlError,
    fault_routes,
    is_control_route,
    on_control_error,
)
from entrypoints.sandboxes.faults import (
    DEFAULT_TIMEOUT_S,
    NO_FAULTS,
    ApiFault,
    Faults,
    FaultSwitch,
)

logger = logging.getLogger(__name__)

MAX_QTY_PER_PRODUCT = 9
MAX_PRODUCTS_PER_ORDER = 10
DEFAULT_PAGE_LIMIT = 25
MAX_PAGE_LIMIT = 100
INITIAL_BALANCE_EUR = 1000.0

_ALNUM = string.ascii_uppercase + string.digits
_ORDER_ID_LENGTH = 11
_STORE_ID = 1
_STORE_EMAIL = "sandbox-store@example.com"
_WEBHOOK_TIMEOUT_S = 5.0
# Kinguin retries failed webhooks "several times" without a documented schedule; a short one
# keeps the sandbox realistic without stalling a test run.
_WEBHOOK_RETRY_DELAYS_S = (0.5, 2.0)
_MSGSPEC_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
# ``updatedAt`` has millisecond precision, and ``completed`` must read later than ``processing``.
_EVENT_TICK = timedelta(milliseconds=1)


@dataclass(frozen=True)
class KinguinSandboxConfig:
    """Settings of one Kinguin sandbox instance.

    ``faults`` are in force from start-up (see ``faults_from_env``); ``timeout_s`` is how long a
    ``timeout_rate`` fault hangs before its 504; ``rng`` decides fractional fault rates (inject a
    seeded one for reproducible runs).
    """

    api_key: str
    webhook_secret: str
    webhook_url: str
    delay_s: float
    faults: Faults = NO_FAULTS
    timeout_s: float = DEFAULT_TIMEOUT_S
    rng: random.Random | None = field(default=None, compare=False, repr=False)


# --- wire types -------------------------------------------------------------------------------


class KinguinOrderLineRequest(msgspec.Struct, rename="camel"):
    """One ``products[]`` entry of ``POST /v2/order``."""

    product_id: Annotated[str, msgspec.Meta(min_length=1)]
    qty: Annotated[int, msgspec.Meta(ge=1, le=MAX_QTY_PER_PRODUCT)]
    price: Annotated[float, msgspec.Meta(ge=0)]
    key_type: Literal["text"] | None = None
    offer_id: str | None = None


class KinguinPlaceOrderRequest(msgspec.Struct, rename="camel"):
    """Body of ``POST /v2/order``."""

    products: Annotated[
        list[KinguinOrderLineRequest], msgspec.Meta(min_length=1, max_length=MAX_PRODUCTS_PER_ORDER)
    ]
    order_external_id: str | None = None


class KinguinOrderKey(msgspec.Struct):
    """A key as listed inside an Order: id and status, never the serial."""

    id: str
    status: str


class KinguinOrderProduct(msgspec.Struct, rename="camel"):
    """One ``products[]`` entry of an Order."""

    kinguin_id: int
    product_id: str
    offer_id: str
    qty: int
    name: str
    price: float
    total_price: float
    request_price: float
    is_preorder: bool
    release_date: str | None
    key_type: str
    keys: list[KinguinOrderKey]


class KinguinOrder(msgspec.Struct, rename="camel"):
    """The Order object returned by place, get and search."""

    order_id: str
    order_external_id: str | None
    kinguin_order_id: int
    status: str
    total_price: float
    request_total_price: float
    payment_price: float
    user_email: str
    store_id: int
    created_at: str
    total_qty: int
    is_preorder: bool
    preorder_release_date: str | None
    products: list[KinguinOrderProduct]


class KinguinOrderPage(msgspec.Struct):
    """Answer of ``GET /v1/order``: one page of orders and the total match count."""

    results: list[KinguinOrder]
    item_count: int


class KinguinKey(msgspec.Struct, rename="camel"):
    """A delivered key as returned by ``GET /v2/order/{orderId}/keys``."""

    id: str
    serial: str
    type: str
    name: str
    kinguin_id: int
    offer_id: str
    product_id: str


class KinguinBalance(msgspec.Struct):
    """Answer of ``GET /v1/balance``."""

    balance: float


class KinguinOrderStatusEvent(msgspec.Struct, rename="camel"):
    """Payload of the ``order.status`` webhook."""

    order_id: str
    order_external_id: str | None
    status: str
    updated_at: str


class KinguinErrorBody(msgspec.Struct, rename="camel", omit_defaults=True):
    """Kinguin's error body."""

    kind: str
    status: int
    title: str
    detail: str
    path: str
    method: str
    trace: str
    timestamp: str
    property_path: str | None = None


class KinguinApiError(Exception):
    """A failure the sandbox answers with Kinguin's error body."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        property_path: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.property_path = property_path
        self.headers = dict(headers or {})


# --- state -------------------------------------------------------------------------------------


@dataclass
class _Key:
    id: str
    serial: str = field(repr=False)  # the plaintext key: keep it out of reprs and logs
    status: str = "PROCESSING"
    type: str = "text/plain"


@dataclass
class _Line:
    product_id: str
    offer_id: str
    kinguin_id: int
    name: str
    qty: int
    price: float
    keys: list[_Key]


@dataclass
class _Order:
    order_id: str
    external_id: str | None
    kinguin_order_id: int
    created_at: datetime
    lines: list[_Line]
    status: str = "processing"
    updated_at: datetime | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)

    def complete(self, at: datetime) -> None:
        """Deliver every key and mark the order completed."""
        for line in self.lines:
            for key in line.keys:
                key.status = "DELIVERED"
        self.status = "completed"
        self.updated_at = at

    def delivered(self) -> list[tuple[_Line, _Key]]:
        """Keys the buyer may download now, in order."""
        return [
            (line, key) for line in self.lines for key in line.keys if key.status == "DELIVERED"
        ]


class _KinguinSandbox:
    """Orders, their keys and the background completions of one sandbox instance."""

    def __init__(self, config: KinguinSandboxConfig) -> None:
        self._config = config
        self._orders: dict[str, _Order] = {}
        self._by_external_id: dict[str, str] = {}
        self._kinguin_order_ids = itertools.count(10_000_001)
        self._tasks: set[asyncio.Task[None]] = set()
        self.faults = FaultSwitch("kinguin", config.faults, config.rng)

    def authorized(self, api_key: str | None) -> bool:
        """Tell whether the request carries the configured ``X-Api-Key``."""
        return api_key is not None and hmac.compare_digest(
            api_key.encode(), self._config.api_key.encode()
        )

    async def admit(self, request: Request[Any, Any, Any]) -> Response[dict[str, object]] | None:
        """Gate an API request: 401 without the key, then the injected faults (which raise)."""
        if not self.authorized(request.headers.get("x-api-key")):
            return Response(_UNAUTHORIZED_BODY, status_code=401)
        fault = await self.faults.before_api_call(self._config.timeout_s)
        if fault is not None:
            raise _fault_error(fault)
        return None

    def place(self, request: KinguinPlaceOrderRequest) -> KinguinOrder:
        """Create a ``processing`` order and schedule its webhooks and completion."""
        external_id = request.order_external_id
        if external_id is not None and external_id in self._by_external_id:
            raise _external_id_used()
        self._check_stock(request)
        order = _Order(
            order_id=self._new_order_id(),
            external_id=external_id,
            kinguin_order_id=next(self._kinguin_order_ids),
            created_at=_now(),
            lines=[_new_line(line) for line in request.products],
        )
        self._orders[order.order_id] = order
        if external_id is not None:
            self._by_external_id[external_id] = order.order_id
        self._schedule(order)
        if external_id is not None and self.faults.current.duplicate_external_id:
            # The order exists; answer as a retry after a lost 201 would be answered.
            raise _external_id_used()
        return _order_view(order)

    def get(self, order_id: str) -> KinguinOrder:
        """Return one order or raise ``OrderNotFound``."""
        return _order_view(self._order(order_id))

    def search(
        self,
        page: int,
        limit: int,
        order_external_id: str | None,
        order_id: str | None,
        status: str | None,
    ) -> KinguinOrderPage:
        """Filter the orders, newest first, and return one page with the total count."""
        _check_page(page, limit)
        matches = [
            order
            for order in reversed(self._orders.values())
            if order_external_id in (None, order.external_id)
            and order_id in (None, order.order_id)
            and status in (None, order.status)
        ]
        page_items = matches[(page - 1) * limit : page * limit]
        return KinguinOrderPage([_order_view(order) for order in page_items], len(matches))

    def keys(self, order_id: str, page: int, limit: int) -> list[KinguinKey]:
        """Return one page of the order's delivered keys."""
        order = self._order(order_id)
        _check_page(page, limit)
        delivered = order.delivered()[(page - 1) * limit : page * limit]
        return [_key_view(line, key) for line, key in delivered]

    def _check_stock(self, request: KinguinPlaceOrderRequest) -> None:
        """Refuse the order when a line names an ``out_of_stock`` product."""
        out_of_stock = self.faults.current.out_of_stock
        for index, line in enumerate(request.products):
            if line.product_id in out_of_stock:
                raise KinguinApiError(
                    400,
                    "ProductUnavailable",
                    f'Product "{line.product_id}" is unavailable: no offer matches the request.',
                    f"products[{index}].productId",
                )

    def _order(self, order_id: str) -> _Order:
        order = self._orders.get(order_id)
        if order is None:
            raise KinguinApiError(404, "OrderNotFound", f'Order "{order_id}" not found')
        return order

    def _new_order_id(self) -> str:
        while True:
            order_id = "".join(secrets.choice(_ALNUM) for _ in range(_ORDER_ID_LENGTH))
            if order_id not in self._orders:
                return order_id

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        # Keep a reference: the event loop holds tasks only weakly.
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("kinguin sandbox: background task failed", exc_info=task.exception())

    def _schedule(self, order: _Order) -> None:
        """Complete the order after the delay; notify each status independently of delivery."""
        reorder = self.faults.current.reorder_webhooks
        self._spawn(self._complete_later(order))
        self._spawn(self._notify_statuses(order, reorder=reorder))

    async def _complete_later(self, order: _Order) -> None:
        await asyncio.sleep(self._config.delay_s)
        order.complete(max(_now(), order.created_at + _EVENT_TICK))
        order.done.set()

    async def _notify_statuses(self, order: _Order, *, reorder: bool) -> None:
        """Send ``processing`` then ``completed``; reordered, ``completed`` then a stale one."""
        processing = _status_event(order, "processing", order.created_at)
        if not reorder:
            await self._send_status_webhook(processing)
        await order.done.wait()
        await self._send_status_webhook(
            _status_event(order, order.status, order.updated_at or order.created_at)
        )
        if reorder:
            await self._send_status_webhook(processing)

    async def _send_status_webhook(self, event: KinguinOrderStatusEvent) -> None:
        """Send one ``order.status`` event, subject to the drop and duplicate faults."""
        if self.faults.drop_webhook():
            logger.info(
                "kinguin sandbox: order.status %s webhook of order %s dropped by fault",
                event.status,
                event.order_id,
            )
            return
        body = msgspec.json.encode(event)
        for _ in range(self.faults.webhook_copies()):
            await self._deliver(body)

    async def _deliver(self, body: bytes) -> None:
        """POST one webhook body, retrying briefly while the receiver fails."""
        for delay in (*_WEBHOOK_RETRY_DELAYS_S, None):
            if await self._post_webhook(body) or delay is None:
                return
            await asyncio.sleep(delay)

    async def _post_webhook(self, body: bytes) -> bool:
        """POST one webhook; tell whether the receiver accepted it (2xx)."""
        url = self._config.webhook_url
        headers = {
            "Content-Type": "application/json",
            "X-Event-Name": "order.status",
            "X-Event-Secret": self._config.webhook_secret,
        }
        try:
            # trust_env=False: a developer's HTTP_PROXY must not capture loopback callbacks.
            async with httpx.AsyncClient(timeout=_WEBHOOK_TIMEOUT_S, trust_env=False) as client:
                response = await client.post(url, content=body, headers=headers)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            logger.warning("kinguin sandbox: webhook to %s failed: %r", url, exc)
            return False
        if response.is_success:
            return True
        logger.warning("kinguin sandbox: webhook to %s answered %s", url, response.status_code)
        return False


# --- pure helpers ------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _kinguin_time(at: datetime) -> str:
    """``2020-10-28T08:40:44+00:00``: the timestamp format of orders and errors."""
    return at.isoformat(timespec="seconds")


def _event_time(at: datetime) -> str:
    """``2020-10-16T11:24:08.025+00:00``: the ``updatedAt`` format of webhooks."""
    return at.isoformat(timespec="milliseconds")


def _status_event(order: _Order, status: str, at: datetime) -> KinguinOrderStatusEvent:
    return KinguinOrderStatusEvent(order.order_id, order.external_id, status, _event_time(at))


def _external_id_used() -> KinguinApiError:
    return KinguinApiError(
        400, "ConstraintViolation", "orderExternalId already used", "orderExternalId"
    )


def _fault_error(fault: ApiFault) -> KinguinApiError:
    """The Kinguin-style answer to an injected API fault."""
    if fault == "timeout":
        detail = "Gateway timeout: the upstream service did not answer in time."
        return KinguinApiError(504, "HttpClient", detail)
    if fault == "rate_limit":
        detail = "Too many requests. Slow down and retry later."
        return KinguinApiError(429, "Http", detail, headers={"Retry-After": "1"})
    return KinguinApiError(500, "Error", "Unexpected error. Please try again later.")


def _hex_id() -> str:
    return secrets.token_hex(12)


def _serial() -> str:
    """A game-key-like serial such as ``ABCDE-FGHIJ-KLMNO``."""
    return "-".join("".join(secrets.choice(_ALNUM) for _ in range(5)) for _ in range(3))


def _new_key(request: KinguinOrderLineRequest) -> _Key:
    """A text key; or, for products whose id starts with ``img`` bought without
    ``keyType: "text"``, an image key (base64 PNG), as Kinguin may deliver."""
    if request.product_id.startswith("img") and request.key_type != "text":
        return _Key(id=_hex_id(), serial=_image_serial(), type="image/png")
    return _Key(id=_hex_id(), serial=_serial())


def _image_serial() -> str:
    """A small PNG (1x1 pixel of a random colour) as Kinguin sends image keys: base64."""
    pixel = b"\x00" + secrets.token_bytes(3)
    header = b"\x89PNG\r\n\x1a\n"
    ihdr = _png_chunk(b"IHDR", (1).to_bytes(4, "big") * 2 + b"\x08\x02\x00\x00\x00")
    idat = _png_chunk(b"IDAT", zlib.compress(pixel))
    return base64.b64encode(header + ihdr + idat + _png_chunk(b"IEND", b"")).decode()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data).to_bytes(4, "big")
    return len(data).to_bytes(4, "big") + kind + data + crc


def _new_line(request: KinguinOrderLineRequest) -> _Line:
    return _Line(
        product_id=request.product_id,
        offer_id=request.offer_id or _hex_id(),
        # A stable integer per productId stands in for the catalogue's kinguinId.
        kinguin_id=zlib.crc32(request.product_id.encode()) % 900_000 + 1000,
        name=f"Sandbox product {request.product_id}",
        qty=request.qty,
        price=request.price,
        keys=[_new_key(request) for _ in range(request.qty)],
    )


def _money(amount: float) -> float:
    return round(amount, 2)


def _order_view(order: _Order) -> KinguinOrder:
    total = _money(sum(line.price * line.qty for line in order.lines))
    return KinguinOrder(
        order_id=order.order_id,
        order_external_id=order.external_id,
        kinguin_order_id=order.kinguin_order_id,
        status=order.status,
        total_price=total,
        request_total_price=total,
        payment_price=total,
        user_email=_STORE_EMAIL,
        store_id=_STORE_ID,
        created_at=_kinguin_time(order.created_at),
        total_qty=sum(line.qty for line in order.lines),
        is_preorder=False,
        preorder_release_date=None,
        products=[_product_view(line) for line in order.lines],
    )


def _product_view(line: _Line) -> KinguinOrderProduct:
    return KinguinOrderProduct(
        kinguin_id=line.kinguin_id,
        product_id=line.product_id,
        offer_id=line.offer_id,
        qty=line.qty,
        name=line.name,
        price=line.price,
        total_price=_money(line.price * line.qty),
        request_price=line.price,
        is_preorder=False,
        release_date=None,
        key_type="text",
        keys=[KinguinOrderKey(key.id, key.status) for key in line.keys],
    )


def _key_view(line: _Line, key: _Key) -> KinguinKey:
    return KinguinKey(
        id=key.id,
        serial=key.serial,
        type=key.type,
        name=line.name,
        kinguin_id=line.kinguin_id,
        offer_id=line.offer_id,
        product_id=line.product_id,
    )


def _check_page(page: int, limit: int) -> None:
    if page < 1:
        raise KinguinApiError(400, "ConstraintViolation", 'Invalid "page" value.', "page")
    if not 1 <= limit <= MAX_PAGE_LIMIT:
        detail = f'Invalid "limit" value. It must be between 1 and {MAX_PAGE_LIMIT}.'
        raise KinguinApiError(400, "ConstraintViolation", detail, "limit")


def _decode_order(body: bytes) -> KinguinPlaceOrderRequest:
    """Decode ``POST /v2/order``; map msgspec failures to Kinguin errors."""
    try:
        return msgspec.json.decode(body, type=KinguinPlaceOrderRequest)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _MSGSPEC_PATH.search(message)
        raise KinguinApiError(
            400, "ConstraintViolation", message, match.group("path") if match else None
        ) from exc
    except msgspec.DecodeError as exc:
        raise KinguinApiError(400, "Http", f"Invalid JSON body: {exc}") from exc


def _on_api_error(
    request: Request[Any, Any, Any], error: KinguinApiError
) -> Response[KinguinErrorBody]:
    body = KinguinErrorBody(
        kind=error.kind,
        status=error.status,
        title=HTTPStatus(error.status).phrase,
        detail=error.detail,
        path=request.url.path,
        method=request.method,
        trace=secrets.token_hex(5),
        timestamp=_kinguin_time(_now()),
        property_path=error.property_path,
    )
    return Response(body, status_code=error.status, headers=error.headers)


def _on_validation_error(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[KinguinErrorBody]:
    """Malformed query parameters (e.g. ``page=abc``) answer like Kinguin, not like Litestar."""
    problems = [item for item in exc.extra or [] if isinstance(item, dict)]
    if not problems:
        return _on_api_error(request, KinguinApiError(400, "ConstraintViolation", exc.detail))
    key = str(problems[0].get("key"))
    detail = f'Invalid "{key}" value: {problems[0].get("message")}'
    return _on_api_error(request, KinguinApiError(400, "ConstraintViolation", detail, key))


_UNAUTHORIZED_BODY = {
    "kind": "Authorization",
    "status": 401,
    "detail": "Invalid authentication data.",
    "type": "Unauthorized",
}


# --- routes ------------------------------------------------------------------------------------


def kinguin_sandbox(config: KinguinSandboxConfig) -> Router:
    """Build a Router simulating the Kinguin eCommerce API, with its own in-memory state.

    Raises ``InvalidFaults`` (a ``ValueError``) if ``config.faults`` is invalid.
    """
    sandbox = _KinguinSandbox(config)

    async def guard(request: Request[Any, Any, Any]) -> Response[dict[str, object]] | None:
        return None if is_control_route(request) else await sandbox.admit(request)

    return Router(
        path="/sandbox/kinguin",
        route_handlers=[*_route_handlers(sandbox), *fault_routes(sandbox.faults)],
        before_request=guard,
        exception_handlers={
            KinguinApiError: _on_api_error,
            ValidationException: _on_validation_error,
            SandboxControlError: on_control_error,
        },
        tags=["sandbox: kinguin"],
    )


def _route_handlers(sandbox: _KinguinSandbox) -> list[HTTPRouteHandler]:
    """The routes of one sandbox; each handler only translates and delegates."""

    @post("/v2/order", status_code=201)
    async def place_order(body: RawBody) -> KinguinOrder:
        return sandbox.place(_decode_order(body))

    @get("/v1/order/{order_id:str}")
    async def get_order(order_id: FromPath[str]) -> KinguinOrder:
        return sandbox.get(order_id)

    @get("/v1/order")
    async def search_orders(
        page: FromQuery[int] = 1,
        limit: FromQuery[int] = DEFAULT_PAGE_LIMIT,
        status: FromQuery[str | None] = None,
        order_external_id: Annotated[str | None, QueryParameter(name="orderExternalId")] = None,
        order_id: Annotated[str | None, QueryParameter(name="orderId")] = None,
    ) -> KinguinOrderPage:
        return sandbox.search(page, limit, order_external_id, order_id, status)

    @get("/v2/order/{order_id:str}/keys")
    async def order_keys(
        order_id: FromPath[str],
        page: FromQuery[int] = 1,
        limit: FromQuery[int] = DEFAULT_PAGE_LIMIT,
    ) -> list[KinguinKey]:
        return sandbox.keys(order_id, page, limit)

    @get("/v1/balance")
    async def balance() -> KinguinBalance:
        return KinguinBalance(INITIAL_BALANCE_EUR)

    return [place_order, get_order, search_orders, order_keys, balance]
