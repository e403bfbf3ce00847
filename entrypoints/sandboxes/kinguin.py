"""Kinguin eCommerce API sandbox: an in-memory simulator served under ``/sandbox/kinguin``.

It mirrors the documented API (EXTERNAL_APIS §1) so the Kinguin adapter needs only a base URL:

- every route checks ``X-Api-Key`` and answers Kinguin's exact 401 body otherwise;
- a catalog of a few dozen products (``entrypoints.sandboxes.kinguin_catalog``: text and image
  keys, a pre-order, one sold out) served by ``GET /v1/products`` (page, limit, name, platform,
  productId, kinguinId, isPreorder, updatedSince, updatedTo, sortBy, sortType),
  ``GET /v1/products/{kinguinId}`` and ``GET /v2/products/{productId}`` (404 ``ProductUnavailable``
  for an unknown or out-of-stock product);
- ``POST /v2/order`` matches each line as Kinguin does: among the line's ``offerId`` (or all
  offers) the cheapest whose price is at most the requested ``price`` and whose stock (``textQty``
  for ``keyType: "text"``) covers ``qty``; none answers 400 ``ProductUnavailable``. The order is
  charged the offers' prices (``requestPrice`` keeps the asked one) from a balance
  (``GET /v1/balance``); too little answers 400 ``InsufficientBalance`` and changes nothing.
  A pre-order must be alone in its request, once, without ``keyType`` (else 400 ``Preorder``);
- it answers 201 with a ``processing`` Order; after ``delay_s`` (with none, before answering)
  the order is ``completed``, its keys ``DELIVERED``, and an ``order.status`` webhook (plain
  ``X-Event-Secret``, no signature, as documented) goes to the configured URL. A pre-order
  waits for its product's release date first (keys ``PENDING``, no webhook at all, as Kinguin's
  pre-order webhooks fire only after release);
  the control route ``POST /products/{productId}/release`` (no API key) releases it now;
- ``GET /v1/order/{id}``, ``GET /v1/order`` (search, e.g. by ``orderExternalId``),
  ``GET /v2/order/{id}/keys`` (bare array, delivered keys only, paginated);
- ``POST /v2/order/{id}/keys/return`` returns a completed order's keys once, within 24 hours of
  delivery and never for a pre-order (else 400 ``NoKeysToReturn``): keys ``RETURNED``, order
  ``refunded`` (with its webhook), balance credited, stock restored.

Like the real service it sends one ``order.status`` webhook per status change: ``processing`` as
soon as the order exists (``updatedAt`` = its creation time), then ``completed`` (and ``refunded``
after a return); each is retried briefly while the receiver fails. Every change of a product
(stock, effective price, release) bumps its ``updatedAt``. "Now" comes from ``config.clock``.

Faults (``entrypoints.sandboxes.faults``; ``GET``/``POST /faults``, no API key) make it hostile on
demand. After the key check every API request first waits ``latency_ms``, then may hang
``timeout_s`` and answer 504 (kind ``HttpClient``), else answer 429 (kind ``Http``, with
``Retry-After``), else 500 (kind ``Error``); a faulted request changes nothing. ``out_of_stock``
product ids make ``POST /v2/order`` answer 400 ``ProductUnavailable``; ``duplicate_external_id``
creates the order but answers 400 "orderExternalId already used", as a retry after a lost 201 would
(only for requests carrying an ``orderExternalId``: without one no client could recover).
``price_jump`` raises every offer's effective price (views and matching) by that percent;
``balance`` sets the balance when a faults set carries it; ``product_updates`` sends Kinguin
``product.update`` webhooks (``{kinguinId, productId, qty, textQty, cheapestOfferId, updatedAt}``)
for a product after each purchase or return of it or its release, and for every product when
``price_jump`` changes. Webhooks may be dropped (``drop_webhook_rate``, logged at INFO), sent twice
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
import contextlib
import hmac
import itertools
import logging
import random
import re
import secrets
import string
import zlib
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import msgspec
from litestar import Request, Response, Router, get, post
from litestar.exceptions import ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery, QueryParameter, RawBody

from entrypoints.sandboxes.callbacks import Callbacks, CallbacksClosed
from entrypoints.sandboxes.control import (
    CONTROL_OPT,
    ControlCheck,
    SandboxControlError,
    control_guards,
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
from entrypoints.sandboxes.journal import Journal
from entrypoints.sandboxes.kinguin_catalog import (
    MIN_NAME_QUERY,
    SORT_FIELDS,
    Catalog,
    CatalogOffer,
    CatalogProduct,
    KinguinProduct,
    KinguinProductPage,
    KinguinProductUpdateEvent,
    ProductQuery,
    SortBy,
    build_catalog,
    effective_price,
    match_offer,
    parse_query_time,
    product_update_event,
    product_view,
    release_date,
)

logger = logging.getLogger(__name__)

MAX_QTY_PER_PRODUCT = 9
MAX_PRODUCTS_PER_ORDER = 10
DEFAULT_PAGE_LIMIT = 25
MAX_PAGE_LIMIT = 100
DEFAULT_BALANCE_EUR = 1_000_000.0
RETURN_WINDOW = timedelta(hours=24)

_ALNUM = string.ascii_uppercase + string.digits
_ORDER_ID_LENGTH = 11
_STORE_ID = 1
_STORE_EMAIL = "sandbox-store@example.com"
_WEBHOOK_TIMEOUT_S = 5.0
# Kinguin retries failed webhooks "several times" without a documented schedule; a short one
# keeps the sandbox realistic without stalling a test run.
_WEBHOOK_RETRY_DELAYS_S = (0.5, 2.0)
# A pre-order also completes when the clock passes its release date: check that this often.
_RELEASE_POLL_S = 1.0
_MSGSPEC_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_KINGUIN_ID = re.compile(r"^[0-9]{1,18}$")
# ``updatedAt`` has millisecond precision, and ``completed`` must read later than ``processing``.
_EVENT_TICK = timedelta(milliseconds=1)
_CENT = 1e-9


@dataclass(frozen=True)
class KinguinSandboxConfig:
    """Settings of one Kinguin sandbox instance.

    ``faults`` are in force from start-up (see ``faults_from_env``); ``timeout_s`` is how long a
    ``timeout_rate`` fault hangs before its 504; ``rng`` decides fractional fault rates (inject a
    seeded one for reproducible runs). ``extra_products`` adds that many generated products to the
    catalog (benchmarks); ``initial_balance`` is the starting balance in EUR (a ``balance`` fault
    overrides it); ``clock`` tells the sandbox's "now" (aware UTC; inject one to test time rules).
    """

    api_key: str
    webhook_secret: str
    webhook_url: str
    delay_s: float
    faults: Faults = NO_FAULTS
    timeout_s: float = DEFAULT_TIMEOUT_S
    callbacks: Callbacks = field(
        default_factory=lambda: Callbacks(keep_connections=False), compare=False, repr=False
    )
    """How webhooks go out: the app's one long-lived client (a client per call by default)."""
    rng: random.Random | None = field(default=None, compare=False, repr=False)
    extra_products: int = 0
    initial_balance: float = DEFAULT_BALANCE_EUR
    clock: Callable[[], datetime] | None = field(default=None, compare=False, repr=False)
    control_check: ControlCheck | None = field(default=None, compare=False, repr=False)
    """Who may use the control routes; None: anyone (standalone and test sandboxes)."""
    state_dir: Path | None = None
    """Where the sandbox journals its state across restarts; None: memory only."""


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
    product: CatalogProduct = field(repr=False)
    offer: CatalogOffer = field(repr=False)
    qty: int
    price: float  # the offer's price: what each key is charged
    request_price: float
    is_preorder: bool
    text: bool  # text keys (stock drawn from textQty too), else image keys
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
    completed_at: datetime | None = None
    returned: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)

    @property
    def is_preorder(self) -> bool:
        """Tell whether the order holds a pre-order (then it is its only line)."""
        return any(line.is_preorder for line in self.lines)

    def total(self) -> float:
        """The charge: each line's offer price times its quantity."""
        return _money(sum(line.price * line.qty for line in self.lines))

    def complete(self, at: datetime) -> None:
        """Deliver every key and mark the order completed."""
        for line in self.lines:
            for key in line.keys:
                key.status = "DELIVERED"
        self.status = "completed"
        self.updated_at = self.completed_at = at

    def refund(self, at: datetime) -> None:
        """Mark every key returned and the order refunded."""
        for line in self.lines:
            for key in line.keys:
                key.status = "RETURNED"
        self.status = "refunded"
        self.returned = True
        self.updated_at = at

    def delivered(self) -> list[tuple[_Line, _Key]]:
        """Keys the buyer may download now, in order."""
        return [
            (line, key) for line in self.lines for key in line.keys if key.status == "DELIVERED"
        ]


@dataclass(frozen=True)
class _Purchase:
    """One order line matched to the offer that will serve it."""

    request: KinguinOrderLineRequest
    product: CatalogProduct
    offer: CatalogOffer
    price: float


# --- journal: the state changes that outlive a restart -----------------------------------------


class _Started(msgspec.Struct, tag="started"):
    at: datetime  # the catalog's start: the pre-order's release date follows from it


class _KeyRecord(msgspec.Struct):
    id: str
    serial: str
    status: str
    type: str


class _LineRecord(msgspec.Struct):
    product_id: str
    offer_id: str
    qty: int
    price: float
    request_price: float
    is_preorder: bool
    text: bool
    keys: list[_KeyRecord]


class _Placed(msgspec.Struct, tag="placed"):
    order_id: str
    external_id: str | None
    kinguin_order_id: int
    created_at: datetime
    lines: list[_LineRecord]
    balance: float  # after the charge


class _Completed(msgspec.Struct, tag="completed"):
    order_id: str
    at: datetime


class _Returned(msgspec.Struct, tag="returned"):
    order_id: str
    at: datetime
    balance: float  # after the credit


class _Released(msgspec.Struct, tag="released"):
    product_id: str
    at: datetime


class _BalanceSet(msgspec.Struct, tag="balance"):
    balance: float


_Record = _Started | _Placed | _Completed | _Returned | _Released | _BalanceSet


def _placed_record(order: _Order, balance: float) -> _Placed:
    lines = [
        _LineRecord(
            product_id=line.product.product_id,
            offer_id=line.offer.offer_id,
            qty=line.qty,
            price=line.price,
            request_price=line.request_price,
            is_preorder=line.is_preorder,
            text=line.text,
            keys=[_KeyRecord(key.id, key.serial, key.status, key.type) for key in line.keys],
        )
        for line in order.lines
    ]
    return _Placed(
        order.order_id,
        order.external_id,
        order.kinguin_order_id,
        order.created_at,
        lines,
        balance,
    )


class _KinguinSandbox:
    """Catalog, balance, orders, their keys and the background work of one sandbox instance."""

    def __init__(self, config: KinguinSandboxConfig) -> None:
        self._config = config
        self._orders: dict[str, _Order] = {}
        self._by_external_id: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._releases: dict[str, asyncio.Event] = {}
        self._resumed = False
        self.control_check = config.control_check
        self.faults = FaultSwitch("kinguin", config.faults, config.rng, self._on_faults_changed)
        start_balance = config.faults.balance
        self.balance = _money(config.initial_balance if start_balance is None else start_balance)
        state = config.state_dir / "kinguin.jsonl" if config.state_dir is not None else None
        self._journal: Journal[_Record] = Journal(state, _Record)
        self._catalog = self._restore(self._journal.replay())
        self._kinguin_order_ids = itertools.count(
            max((order.kinguin_order_id for order in self._orders.values()), default=10_000_000) + 1
        )

    def now(self) -> datetime:
        """The sandbox's "now": the configured clock, else the system's (UTC)."""
        return self._config.clock() if self._config.clock is not None else _now()

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

    # --- restart ---

    def _restore(self, records: list[_Record]) -> Catalog:
        """Rebuild the catalog, orders and balance from the journal (a fresh one: now)."""
        started = next((r.at for r in records if isinstance(r, _Started)), None)
        if started is None:
            started = self.now()
            self._journal.append(_Started(started))
        catalog = build_catalog(started, self._config.extra_products)
        for record in records:
            self._apply(catalog, record)
        return catalog

    def _apply(self, catalog: Catalog, record: _Record) -> None:
        if isinstance(record, _Placed):
            self._add(_restored_order(catalog, record))
            self.balance = record.balance
        elif isinstance(record, _Completed):
            self._orders[record.order_id].complete(record.at)
            self._orders[record.order_id].done.set()
        elif isinstance(record, _Returned):
            _refund(self._orders[record.order_id], record.at)
            self.balance = record.balance
        elif isinstance(record, _Released):
            catalog.products[record.product_id].release(record.at)
        elif isinstance(record, _BalanceSet):
            self.balance = record.balance

    def resume(self) -> None:
        """Once, at the first request after a restart: finish the orders still under way."""
        if self._resumed:
            return
        self._resumed = True
        for order in self._orders.values():
            if order.status == "processing":
                self._schedule(order)

    def _add(self, order: _Order) -> None:
        self._orders[order.order_id] = order
        if order.external_id is not None:
            self._by_external_id[order.external_id] = order.order_id

    # --- catalog ---

    def products(self, page: int, limit: int, query: ProductQuery) -> KinguinProductPage:
        """One page of the products matching ``query`` and the total match count."""
        _check_page(page, limit)
        jump = self.faults.current.price_jump
        matches = self._catalog.search(query, jump)
        page_items = matches[(page - 1) * limit : page * limit]
        return KinguinProductPage([product_view(item, jump) for item in page_items], len(matches))

    def product_by_kinguin_id(self, raw_id: str) -> KinguinProduct:
        """``GET /v1/products/{kinguinId}``: the product, or 404 if unknown or out of stock."""
        found = self._catalog.by_kinguin_id.get(int(raw_id)) if _KINGUIN_ID.match(raw_id) else None
        return self._available_view(found, raw_id)

    def product_by_id(self, product_id: str) -> KinguinProduct:
        """``GET /v2/products/{productId}``: the product, or 404 if unknown or out of stock."""
        return self._available_view(self._catalog.get(product_id), product_id)

    def release(self, product_id: str) -> KinguinProduct:
        """Control: release ``product_id`` now; its pending pre-orders then complete."""
        product = self._catalog.get(product_id)
        if product is None:
            raise SandboxControlError(404, f'Product "{product_id}" not found')
        now = self.now()
        self._journal.append(_Released(product_id, now))
        product.release(now)
        self._touch([product])
        waiters = self._releases.pop(product_id, None)
        if waiters is not None:
            waiters.set()
        return product_view(product, self.faults.current.price_jump)

    def _available_view(self, product: CatalogProduct | None, name: str) -> KinguinProduct:
        if product is None or product.total_qty() == 0:
            detail = f'Product "{name}" not found or out of stock.'
            raise KinguinApiError(404, "ProductUnavailable", detail)
        return product_view(product, self.faults.current.price_jump)

    # --- orders ---

    def place(self, request: KinguinPlaceOrderRequest) -> KinguinOrder:
        """Match, charge and create a ``processing`` order; schedule its webhooks and completion."""
        external_id = request.order_external_id
        if external_id is not None and external_id in self._by_external_id:
            raise _external_id_used()
        self._check_stock(request)
        purchases = self._match(request)
        charge = _money(sum(purchase.price * purchase.request.qty for purchase in purchases))
        if charge > self.balance + _CENT:
            detail = f"Insufficient balance: the order costs {charge:.2f} EUR, the balance is "
            raise KinguinApiError(400, "InsufficientBalance", f"{detail}{self.balance:.2f} EUR.")
        self.balance = _money(self.balance - charge)
        order = _Order(
            order_id=self._new_order_id(),
            external_id=external_id,
            kinguin_order_id=next(self._kinguin_order_ids),
            created_at=self.now(),
            lines=[_buy(purchase) for purchase in purchases],
        )
        self._journal.append(_placed_record(order, self.balance))
        self._add(order)
        answer = _order_view(order)  # processing, whatever follows
        self._schedule(order)
        self._touch(line.product for line in order.lines)
        if external_id is not None and self.faults.current.duplicate_external_id:
            # The order exists; answer as a retry after a lost 201 would be answered.
            raise _external_id_used()
        return answer

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

    def return_keys(self, order_id: str) -> list[KinguinOrderKey]:
        """Return every key of a completed order: refund it, credit the balance, restock."""
        order = self._order(order_id)
        now = self.now()
        _check_returnable(order, now)
        at = max(now, (order.updated_at or order.created_at) + _EVENT_TICK)
        self.balance = _money(self.balance + order.total())
        self._journal.append(_Returned(order.order_id, at, self.balance))
        _refund(order, at)
        event = _status_event(order, order.status, order.updated_at or now)
        self._spawn(self._send_status_webhook(event))
        self._touch(line.product for line in order.lines)
        return [KinguinOrderKey(key.id, key.status) for line in order.lines for key in line.keys]

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

    def _match(self, request: KinguinPlaceOrderRequest) -> list[_Purchase]:
        """Match every line to an offer, as Kinguin does, or raise the reason none fits."""
        products = [
            self._ordered_product(index, line) for index, line in enumerate(request.products)
        ]
        _check_preorders(request.products, products)
        reserved: dict[str, int] = {}
        purchases: list[_Purchase] = []
        for index, (line, product) in enumerate(zip(request.products, products, strict=True)):
            purchase = self._pick_offer(index, line, product, reserved)
            offer_id = purchase.offer.offer_id
            reserved[offer_id] = reserved.get(offer_id, 0) + line.qty
            purchases.append(purchase)
        return purchases

    def _ordered_product(self, index: int, line: KinguinOrderLineRequest) -> CatalogProduct:
        product = self._catalog.get(line.product_id)
        if product is None:
            detail = f'Product "{line.product_id}" not found.'
            raise KinguinApiError(400, "ProductUnavailable", detail, f"products[{index}].productId")
        return product

    def _pick_offer(
        self,
        index: int,
        line: KinguinOrderLineRequest,
        product: CatalogProduct,
        reserved: Mapping[str, int],
    ) -> _Purchase:
        candidates = product.offers
        if line.offer_id is not None:
            offer = product.offer(line.offer_id)
            if offer is None:
                detail = f'Offer "{line.offer_id}" of product "{product.product_id}" not found.'
                raise KinguinApiError(
                    400, "ProductUnavailable", detail, f"products[{index}].offerId"
                )
            candidates = [offer]
        jump = self.faults.current.price_jump
        text = line.key_type == "text"
        chosen = match_offer(
            candidates, line.price, line.qty, text=text, price_jump=jump, reserved=reserved
        )
        if chosen is None:
            detail = (
                f'Product "{product.product_id}" is unavailable: no offer matches the price '
                f"{line.price:.2f} EUR and the quantity {line.qty}"
                f"{' of text keys' if text else ''}."
            )
            raise KinguinApiError(400, "ProductUnavailable", detail, f"products[{index}].price")
        return _Purchase(line, product, chosen, effective_price(chosen, jump))

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

    # --- product changes ---

    def _on_faults_changed(self, previous: Faults, current: Faults) -> None:
        """A faults set carrying ``balance`` sets it; a new ``price_jump`` changes every product."""
        if current.balance is not None:
            self.balance = _money(current.balance)
            self._journal.append(_BalanceSet(self.balance))
        if current.price_jump != previous.price_jump:
            self._touch(self._catalog.products.values())

    def _touch(self, products: Iterable[CatalogProduct]) -> None:
        """Bump the products' ``updatedAt``; with ``product_updates``, send their webhooks."""
        now = self.now()
        changed = list({product.product_id: product for product in products}.values())
        for product in changed:
            product.updated_at = max(now, product.updated_at + _EVENT_TICK)
        if self.faults.current.product_updates and changed:
            jump = self.faults.current.price_jump
            events = [product_update_event(product, jump) for product in changed]
            self._spawn(self._send_product_updates(events))

    # --- background work ---

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
        """Complete the order after the delay — without one, keys in stock are delivered
        before the purchase is answered, as Kinguin hands them out at once — and notify each
        status independently of delivery."""
        reorder = self.faults.current.reorder_webhooks
        if self._config.delay_s == 0 and not order.is_preorder:
            self._complete(order)
        else:
            self._spawn(self._complete_later(order))
        self._spawn(self._notify_statuses(order, reorder=reorder))

    async def _complete_later(self, order: _Order) -> None:
        await self._released(order)
        await asyncio.sleep(self._config.delay_s)
        self._complete(order)

    def _complete(self, order: _Order) -> None:
        at = max(self.now(), order.created_at + _EVENT_TICK)
        self._journal.append(_Completed(order.order_id, at))
        order.complete(at)
        order.done.set()

    async def _released(self, order: _Order) -> None:
        """Wait until every pre-order line's product is released (at once for other orders)."""
        for line in order.lines:
            while line.is_preorder and not line.product.released(self.now()):
                waiters = self._releases.setdefault(line.product.product_id, asyncio.Event())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiters.wait(), _RELEASE_POLL_S)

    async def _notify_statuses(self, order: _Order, *, reorder: bool) -> None:
        """Send ``processing`` then ``completed``; reordered, ``completed`` then a stale one.

        A pre-order sends nothing before its release: Kinguin's pre-order webhooks follow it.
        """
        processing = _status_event(order, "processing", order.created_at)
        await self._released(order)
        if not reorder:
            await self._send_status_webhook(processing)
        await order.done.wait()
        await self._send_status_webhook(
            _status_event(order, "completed", order.completed_at or order.created_at)
        )
        if reorder:
            await self._send_status_webhook(processing)

    async def _send_status_webhook(self, event: KinguinOrderStatusEvent) -> None:
        """Send one ``order.status`` event, subject to the drop and duplicate faults."""
        what = f"order.status {event.status} webhook of order {event.order_id}"
        await self._send_webhook("order.status", msgspec.json.encode(event), what)

    async def _send_product_updates(self, events: Sequence[KinguinProductUpdateEvent]) -> None:
        """Send ``product.update`` events one after the other."""
        for event in events:
            what = f"product.update webhook of product {event.product_id}"
            await self._send_webhook("product.update", msgspec.json.encode(event), what)

    async def _send_webhook(self, event_name: str, body: bytes, what: str) -> None:
        """Send one webhook, subject to the drop and duplicate faults."""
        if self.faults.drop_webhook():
            logger.info("kinguin sandbox: %s dropped by fault", what)
            return
        for _ in range(self.faults.webhook_copies()):
            await self._deliver(event_name, body)

    async def _deliver(self, event_name: str, body: bytes) -> None:
        """POST one webhook body, retrying briefly while the receiver fails."""
        for delay in (*_WEBHOOK_RETRY_DELAYS_S, None):
            if await self._post_webhook(event_name, body) or delay is None:
                return
            if self._config.callbacks.closed:
                return  # shutting down: counted by the callbacks' close
            await asyncio.sleep(delay)

    async def _post_webhook(self, event_name: str, body: bytes) -> bool:
        """POST one webhook; tell whether the receiver accepted it (2xx)."""
        url = self._config.webhook_url
        headers = {
            "Content-Type": "application/json",
            "X-Event-Name": event_name,
            "X-Event-Secret": self._config.webhook_secret,
        }
        try:
            response = await self._config.callbacks.post(url, body, headers, _WEBHOOK_TIMEOUT_S)
        except CallbacksClosed:
            return False
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


def _check_preorders(
    lines: Sequence[KinguinOrderLineRequest], products: Sequence[CatalogProduct]
) -> None:
    """Kinguin's pre-order rules: one per request, alone, without ``keyType``."""
    preorders = [index for index, product in enumerate(products) if product.is_preorder]
    if not preorders:
        return
    if len(preorders) > 1:
        raise KinguinApiError(400, "Preorder", "Only one pre-order may be bought per order.")
    if len(lines) > 1:
        detail = "A pre-order cannot be mixed with other products in one order."
        raise KinguinApiError(400, "Preorder", detail)
    [index] = preorders
    if lines[index].key_type is not None:
        detail = "keyType is not allowed for a pre-order."
        raise KinguinApiError(400, "Preorder", detail, f"products[{index}].keyType")


def _check_returnable(order: _Order, now: datetime) -> None:
    """Kinguin's return rules: once, not a pre-order, completed, within 24 h of delivery."""
    reason = None
    if order.returned:
        reason = f'The keys of order "{order.order_id}" were already returned (once per order).'
    elif order.is_preorder:
        reason = f'Order "{order.order_id}" is a pre-order: its keys cannot be returned.'
    elif order.completed_at is None or order.status != "completed":
        reason = f'Order "{order.order_id}" is not completed: it has no delivered keys to return.'
    elif now - order.completed_at > RETURN_WINDOW:
        reason = (
            f'The keys of order "{order.order_id}" were delivered more than 24 hours ago and '
            "can no longer be returned."
        )
    if reason is not None:
        raise KinguinApiError(400, "NoKeysToReturn", reason)


def _buy(purchase: _Purchase) -> _Line:
    """Draw the purchase's keys from its offer's stock and make its order line."""
    request, product = purchase.request, purchase.product
    text = request.key_type == "text" or not product.image_keys
    purchase.offer.draw(request.qty, text=text)
    status = "PENDING" if product.is_preorder else "PROCESSING"
    return _Line(
        product=product,
        offer=purchase.offer,
        qty=request.qty,
        price=purchase.price,
        request_price=request.price,
        is_preorder=product.is_preorder,
        text=text,
        keys=[_new_key(text=text, status=status) for _ in range(request.qty)],
    )


def _restored_order(catalog: Catalog, record: _Placed) -> _Order:
    """An order as placed, its keys drawn from the restored catalog's stock again."""
    lines = []
    for line in record.lines:
        product = catalog.products[line.product_id]
        offer = product.offer(line.offer_id)
        if offer is None:
            raise ValueError(f"journal names offer {line.offer_id} that product lacks")
        offer.draw(line.qty, text=line.text)
        keys = [_Key(key.id, key.serial, key.status, key.type) for key in line.keys]
        lines.append(
            _Line(
                product=product,
                offer=offer,
                qty=line.qty,
                price=line.price,
                request_price=line.request_price,
                is_preorder=line.is_preorder,
                text=line.text,
                keys=keys,
            )
        )
    return _Order(
        record.order_id, record.external_id, record.kinguin_order_id, record.created_at, lines
    )


def _refund(order: _Order, at: datetime) -> None:
    """Refund the order and put its keys back in stock."""
    order.refund(at)
    for line in order.lines:
        line.offer.restore(line.qty, text=line.text)


def _hex_id() -> str:
    return secrets.token_hex(12)


def _serial() -> str:
    """A game-key-like serial such as ``ABCDE-FGHIJ-KLMNO``."""
    return "-".join("".join(secrets.choice(_ALNUM) for _ in range(5)) for _ in range(3))


def _new_key(*, text: bool, status: str) -> _Key:
    """A text key, or an image key (base64 PNG) as Kinguin may deliver."""
    if text:
        return _Key(id=_hex_id(), serial=_serial(), status=status)
    return _Key(id=_hex_id(), serial=_image_serial(), status=status, type="image/png")


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


def _money(amount: float) -> float:
    return round(amount, 2)


def _order_view(order: _Order) -> KinguinOrder:
    preorder = next((line for line in order.lines if line.is_preorder), None)
    return KinguinOrder(
        order_id=order.order_id,
        order_external_id=order.external_id,
        kinguin_order_id=order.kinguin_order_id,
        status=order.status,
        total_price=order.total(),
        request_total_price=_money(sum(line.request_price * line.qty for line in order.lines)),
        payment_price=order.total(),
        user_email=_STORE_EMAIL,
        store_id=_STORE_ID,
        created_at=_kinguin_time(order.created_at),
        total_qty=sum(line.qty for line in order.lines),
        is_preorder=preorder is not None,
        preorder_release_date=release_date(preorder.product) if preorder is not None else None,
        products=[_order_line_view(line) for line in order.lines],
    )


def _order_line_view(line: _Line) -> KinguinOrderProduct:
    return KinguinOrderProduct(
        kinguin_id=line.product.kinguin_id,
        product_id=line.product.product_id,
        offer_id=line.offer.offer_id,
        qty=line.qty,
        name=line.product.name,
        price=line.price,
        total_price=_money(line.price * line.qty),
        request_price=line.request_price,
        is_preorder=line.is_preorder,
        release_date=release_date(line.product),
        key_type="text" if line.text else "image",
        keys=[KinguinOrderKey(key.id, key.status) for key in line.keys],
    )


def _key_view(line: _Line, key: _Key) -> KinguinKey:
    return KinguinKey(
        id=key.id,
        serial=key.serial,
        type=key.type,
        name=line.product.name,
        kinguin_id=line.product.kinguin_id,
        offer_id=line.offer.offer_id,
        product_id=line.product.product_id,
    )


def _check_page(page: int, limit: int) -> None:
    if page < 1:
        raise KinguinApiError(400, "ConstraintViolation", 'Invalid "page" value.', "page")
    if not 1 <= limit <= MAX_PAGE_LIMIT:
        detail = f'Invalid "limit" value. It must be between 1 and {MAX_PAGE_LIMIT}.'
        raise KinguinApiError(400, "ConstraintViolation", detail, "limit")


@dataclass(frozen=True)
class ProductSearchParams:
    """The raw query parameters of ``GET /v1/products`` (besides page and limit)."""

    name: str | None = None
    platform: str | None = None
    product_id: str | None = None
    kinguin_id: str | None = None
    is_preorder: str | None = None
    updated_since: str | None = None
    updated_to: str | None = None
    sort_by: str | None = None
    sort_type: str | None = None


def _product_query(params: ProductSearchParams) -> ProductQuery:
    """Validate the raw parameters into a ``ProductQuery``; 400 ``ConstraintViolation`` if bad."""
    if params.name is not None and len(params.name.strip()) < MIN_NAME_QUERY:
        raise _invalid("name", f"It must have at least {MIN_NAME_QUERY} characters.")
    platforms = _csv(params.platform)
    return ProductQuery(
        name=params.name.strip() if params.name is not None else None,
        platforms=frozenset(p.casefold() for p in platforms) if platforms is not None else None,
        product_ids=_csv(params.product_id),
        kinguin_ids=_kinguin_ids(params.kinguin_id),
        is_preorder=_yes_no("isPreorder", params.is_preorder),
        updated_since=_query_time("updatedSince", params.updated_since),
        updated_to=_query_time("updatedTo", params.updated_to),
        sort_by=_sort_by(params.sort_by),
        descending=_sort_type(params.sort_type),
    )


def _invalid(parameter: str, reason: str) -> KinguinApiError:
    detail = f'Invalid "{parameter}" value. {reason}'
    return KinguinApiError(400, "ConstraintViolation", detail, parameter)


def _csv(raw: str | None) -> frozenset[str] | None:
    if raw is None:
        return None
    return frozenset(item.strip() for item in raw.split(",") if item.strip())


def _kinguin_ids(raw: str | None) -> frozenset[int] | None:
    items = _csv(raw)
    if items is None:
        return None
    if not all(_KINGUIN_ID.match(item) for item in items):
        raise _invalid("kinguinId", "It must be a comma-separated list of integers.")
    return frozenset(int(item) for item in items)


def _yes_no(parameter: str, raw: str | None) -> bool | None:
    if raw is None:
        return None
    if raw not in ("yes", "no"):
        raise _invalid(parameter, 'It must be "yes" or "no".')
    return raw == "yes"


def _query_time(parameter: str, raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        return parse_query_time(raw.strip())
    except ValueError as exc:
        raise _invalid(parameter, "Use Y-m-d, Y-m-d H:i:s or Y-m-dTH:i:s.") from exc


def _sort_by(raw: str | None) -> SortBy:
    if raw is None:
        return "kinguinId"
    for name in SORT_FIELDS:
        if raw == name:
            return name
    raise _invalid("sortBy", f"It must be one of {', '.join(SORT_FIELDS)}.")


def _sort_type(raw: str | None) -> bool:
    if raw not in (None, "asc", "desc"):
        raise _invalid("sortType", 'It must be "asc" or "desc".')
    return raw == "desc"


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
        sandbox.resume()
        return None if is_control_route(request) else await sandbox.admit(request)

    return Router(
        path="/sandbox/kinguin",
        route_handlers=[
            *_route_handlers(sandbox),
            *fault_routes(sandbox.faults, control_guards(config.control_check)),
        ],
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
    return [*_catalog_routes(sandbox), *_order_routes(sandbox), *_control_routes(sandbox)]


def _catalog_routes(sandbox: _KinguinSandbox) -> list[HTTPRouteHandler]:
    """``GET /v1/products``, ``GET /v1/products/{kinguinId}``, ``GET /v2/products/{productId}``."""

    @get("/v1/products")
    async def search_products(
        *,
        page: FromQuery[int] = 1,
        limit: FromQuery[int] = DEFAULT_PAGE_LIMIT,
        name: FromQuery[str | None] = None,
        platform: FromQuery[str | None] = None,
        product_id: Annotated[str | None, QueryParameter(name="productId")] = None,
        kinguin_id: Annotated[str | None, QueryParameter(name="kinguinId")] = None,
        is_preorder: Annotated[str | None, QueryParameter(name="isPreorder")] = None,
        updated_since: Annotated[str | None, QueryParameter(name="updatedSince")] = None,
        updated_to: Annotated[str | None, QueryParameter(name="updatedTo")] = None,
        sort_by: Annotated[str | None, QueryParameter(name="sortBy")] = None,
        sort_type: Annotated[str | None, QueryParameter(name="sortType")] = None,
    ) -> KinguinProductPage:
        params = ProductSearchParams(
            name=name,
            platform=platform,
            product_id=product_id,
            kinguin_id=kinguin_id,
            is_preorder=is_preorder,
            updated_since=updated_since,
            updated_to=updated_to,
            sort_by=sort_by,
            sort_type=sort_type,
        )
        return sandbox.products(page, limit, _product_query(params))

    @get("/v1/products/{kinguin_id:str}")
    async def product_v1(kinguin_id: FromPath[str]) -> KinguinProduct:
        return sandbox.product_by_kinguin_id(kinguin_id)

    @get("/v2/products/{product_id:str}")
    async def product_v2(product_id: FromPath[str]) -> KinguinProduct:
        return sandbox.product_by_id(product_id)

    return [search_products, product_v1, product_v2]


def _order_routes(sandbox: _KinguinSandbox) -> list[HTTPRouteHandler]:
    """Orders, keys, key returns and the balance."""

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

    @post("/v2/order/{order_id:str}/keys/return", status_code=200)
    async def return_keys(order_id: FromPath[str]) -> list[KinguinOrderKey]:
        return sandbox.return_keys(order_id)

    @get("/v1/balance")
    async def balance() -> KinguinBalance:
        return KinguinBalance(sandbox.balance)

    return [place_order, get_order, search_orders, order_keys, return_keys, balance]


def _control_routes(sandbox: _KinguinSandbox) -> list[HTTPRouteHandler]:
    """The sandbox's own controls besides ``/faults``: no API key, no injected faults."""

    @post(
        "/products/{product_id:str}/release",
        status_code=200,
        opt={CONTROL_OPT: True},
        guards=control_guards(sandbox.control_check),
    )
    async def release_product(product_id: FromPath[str]) -> KinguinProduct:
        return sandbox.release(product_id)

    return [release_product]
