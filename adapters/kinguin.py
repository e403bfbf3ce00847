"""Kinguin eCommerce API client (httpx), implementing ``application.ports.Supplier``; and the
parser of Kinguin's ``order.status`` webhooks.

Errors (from ``application.errors``):
SupplierError
├── SupplierRejected     4xx with a Kinguin error kind (ProductUnavailable, InsufficientBalance…)
└── SupplierUnavailable  429, 5xx, timeouts and connection failures: retry later
``MalformedWebhook`` — a webhook body that is not a Kinguin ``order.status`` or
``product.update`` payload.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import msgspec

from application.errors import SupplierRejected, SupplierUnavailable, UnreadableDelivery
from application.ports import ProductPage, SupplierKey, SupplierOrder
from application.webhooks import Delivery
from domain.events import LineItem, SupplierProduct
from domain.order import order_id_from_reference
from domain.supply import SupplierNotice
from domain.webhooks import kinguin_key, kinguin_product_key

KEYS_PAGE_SIZE = 100  # the documented maximum
BALANCE_CACHE_S = 5.0  # a sale spike asks for the balance once per this many seconds


class MalformedWebhook(UnreadableDelivery):
    """The webhook body does not have the documented shape."""


class _Order(msgspec.Struct):
    orderId: str  # noqa: N815 - Kinguin's field names
    status: str
    orderExternalId: str | None = None  # noqa: N815


class _Key(msgspec.Struct):
    id: str
    serial: str
    type: str = "text/plain"
    productId: str = ""  # noqa: N815


class _Search(msgspec.Struct):
    results: list[_Order]
    item_count: int = 0


class _Product(msgspec.Struct):
    kinguinId: int  # noqa: N815
    productId: str  # noqa: N815
    name: str
    price: float = 0.0
    qty: int = 0
    textQty: int = 0  # noqa: N815
    platform: str = ""
    regionalLimitations: str = ""  # noqa: N815
    cheapestOfferId: list[str] = msgspec.field(default_factory=list)  # noqa: N815
    isPreorder: bool = False  # noqa: N815
    releaseDate: str | None = None  # noqa: N815
    updatedAt: str = ""  # noqa: N815


class _ProductSearch(msgspec.Struct):
    results: list[_Product]
    item_count: int = 0


class _Balance(msgspec.Struct):
    balance: float


class _ReturnedKey(msgspec.Struct):
    id: str
    status: str = "RETURNED"


class ProductUpdateWebhook(msgspec.Struct, frozen=True):
    """The body of a ``product.update`` webhook (only the product id is relied upon: the
    product is read again from the API)."""

    productId: str  # noqa: N815
    updatedAt: str = ""  # noqa: N815
    kinguinId: int | None = None  # noqa: N815


class OrderStatusWebhook(msgspec.Struct, frozen=True):
    """The body of an ``order.status`` webhook."""

    orderId: str  # noqa: N815
    status: str
    updatedAt: str  # noqa: N815
    orderExternalId: str | None = None  # noqa: N815


class KinguinClient:
    """Talks to Kinguin (or its sandbox) over HTTP with ``X-Api-Key``."""

    def __init__(
        self,
        http: httpx.Client,
        keys_page_size: int = KEYS_PAGE_SIZE,
        balance_cache_s: float = BALANCE_CACHE_S,
    ) -> None:
        self._http = http
        self._page_size = keys_page_size
        self._balance_cache_s = balance_cache_s
        self._balance: tuple[float, Decimal] | None = None
        self._balance_lock = threading.Lock()

    def products(
        self, *, page: int, limit: int, updated_since: datetime | None = None
    ) -> ProductPage:
        """One page of ``GET /v1/products`` (``updatedSince`` for increments)."""
        params: dict[str, Any] = {"page": page, "limit": limit, "sortBy": "kinguinId"}
        if updated_since is not None:
            params["updatedSince"] = updated_since.astimezone(UTC).isoformat(timespec="seconds")
        found = self._call("GET", "/v1/products", params=params, type_=_ProductSearch)
        return ProductPage(products=[_supplier_product(p) for p in found.results],
                           total=found.item_count)  # fmt: skip

    def product(self, product_id: str) -> SupplierProduct | None:
        """``GET /v2/products/{productId}``; None when Kinguin answers 404 (not offered)."""
        try:
            found = self._call("GET", f"/v2/products/{product_id}", type_=_Product)
        except SupplierRejected as refusal:
            if refusal.status == 404:
                return None
            raise
        return _supplier_product(found)

    def balance(self, *, fresh: bool = False) -> Decimal:
        """``GET /v1/balance``, asked at most once per ``balance_cache_s`` seconds (always
        when ``fresh``)."""
        with self._balance_lock:
            now = time.monotonic()
            cached = self._balance is not None and now - self._balance[0] < self._balance_cache_s
            if cached and not fresh and self._balance is not None:
                return self._balance[1]
            found = self._call("GET", "/v1/balance", type_=_Balance)
            self._balance = (now, Decimal(str(found.balance)))
            return self._balance[1]

    def return_keys(self, supplier_order_id: str) -> list[str]:
        """``POST /v2/order/{orderId}/keys/return``: the ids of the returned keys."""
        returned = self._call(
            "POST", f"/v2/order/{supplier_order_id}/keys/return", type_=list[_ReturnedKey]
        )
        with self._balance_lock:
            self._balance = None  # the balance was credited
        return [key.id for key in returned]

    def place_order(self, external_id: str, items: Sequence[LineItem]) -> SupplierOrder:
        """Buy the items; a duplicate ``orderExternalId`` resolves to the existing purchase."""
        body = {"products": [_product(item) for item in items], "orderExternalId": external_id}
        try:
            return _supplier_order(self._call("POST", "/v2/order", json=body, type_=_Order))
        except SupplierRejected as refusal:
            if "ConstraintViolation" not in str(refusal):
                raise
            existing = self.find_by_external_id(external_id)
            if existing is None:
                raise
            return existing

    def find_by_external_id(self, external_id: str) -> SupplierOrder | None:
        """The purchase placed with this ``orderExternalId``, if any."""
        found = self._call(
            "GET", "/v1/order", params={"orderExternalId": external_id}, type_=_Search
        )
        return _supplier_order(found.results[0]) if found.results else None

    def get_order(self, supplier_order_id: str) -> SupplierOrder:
        """The purchase's current status."""
        return _supplier_order(self._call("GET", f"/v1/order/{supplier_order_id}", type_=_Order))

    def fetch_keys(self, supplier_order_id: str) -> list[SupplierKey]:
        """Every delivered key, following the pages."""
        keys: list[SupplierKey] = []
        page = 1
        while True:
            batch = self._call(
                "GET",
                f"/v2/order/{supplier_order_id}/keys",
                params={"page": page, "limit": self._page_size},
                type_=list[_Key],
            )
            keys.extend(
                SupplierKey(id=k.id, serial=k.serial, content_type=k.type, product_id=k.productId)
                for k in batch
            )
            if len(batch) < self._page_size:
                return keys
            page += 1

    def _call(self, method: str, path: str, *, type_: type[Any], **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as failure:
            raise SupplierUnavailable(f"Kinguin {method} {path}: {failure!r}") from failure
        if response.status_code == 429 or response.status_code >= 500:
            raise SupplierUnavailable(f"Kinguin {method} {path}: HTTP {response.status_code}")
        if response.status_code >= 400:
            kind, message = _describe_error(response)
            raise SupplierRejected(message, kind=kind, status=response.status_code)
        try:
            return msgspec.json.decode(response.content, type=type_)
        except msgspec.DecodeError as bad:
            raise SupplierUnavailable(f"Kinguin {method} {path}: unreadable answer") from bad


def _product(item: LineItem) -> dict[str, Any]:
    """One ``products[]`` entry: ``price`` is the most the shop agrees to pay per key, the
    line's cost cap — never the customer's price (orders placed before the catalog, which have
    no cap, send their sale price)."""
    cap = item.cost_cap if item.cost_cap is not None else item.unit_price
    product: dict[str, Any] = {"productId": item.product_id, "qty": item.quantity,
                               "price": float(cap)}  # fmt: skip
    if item.offer_id:
        product["offerId"] = item.offer_id
    return product


def _supplier_product(product: _Product) -> SupplierProduct:
    return SupplierProduct(
        product_id=product.productId,
        kinguin_id=product.kinguinId,
        name=product.name,
        platform=product.platform,
        region=product.regionalLimitations,
        qty=product.qty,
        text_qty=product.textQty,
        cost=Decimal(str(product.price)),
        cheapest_offer_ids=tuple(product.cheapestOfferId),
        is_preorder=product.isPreorder,
        release_date=product.releaseDate,
        supplier_updated_at=product.updatedAt,
    )


def _supplier_order(order: _Order) -> SupplierOrder:
    return SupplierOrder(
        order_id=order.orderId, external_id=order.orderExternalId, status=order.status
    )


def _describe_error(response: httpx.Response) -> tuple[str, str]:
    """Kinguin's error kind and a one-line description."""
    try:
        error = response.json()
    except ValueError:
        return "Error", f"HTTP {response.status_code}"
    if not isinstance(error, dict):
        return "Error", f"HTTP {response.status_code}"
    kind = str(error.get("kind", "Error"))
    return kind, f"{kind} ({response.status_code}): {error.get('detail', '')}"


def parse_order_status(raw_body: bytes) -> OrderStatusWebhook:
    """Read an ``order.status`` webhook body."""
    try:
        return msgspec.json.decode(raw_body, type=OrderStatusWebhook)
    except msgspec.DecodeError as bad:
        raise MalformedWebhook(f"not an order.status payload: {bad}") from bad
    except RecursionError:
        raise MalformedWebhook("not an order.status payload: nested too deeply") from None


def supplier_notice(webhook: OrderStatusWebhook) -> SupplierNotice:
    """The domain's view of an ``order.status`` webhook."""
    return SupplierNotice(
        supplier_order_id=webhook.orderId,
        status=webhook.status,
        updated_at=webhook.updatedAt,
        external_id=webhook.orderExternalId,
    )


def read_order_status(
    raw_body: bytes, headers: Mapping[str, str] | None = None
) -> tuple[UUID | None, SupplierNotice, Delivery]:
    """A verified ``order.status`` body as the use cases take it."""
    webhook = parse_order_status(raw_body)
    key = kinguin_key(webhook.orderId, webhook.status, webhook.updatedAt)
    delivery = Delivery.of("kinguin", key, "order.status", raw_body, headers)
    order_id = order_id_from_reference(webhook.orderExternalId or "")
    return order_id, supplier_notice(webhook), delivery


def read_product_update(
    raw_body: bytes, headers: Mapping[str, str] | None = None
) -> tuple[str, Delivery]:
    """A verified ``product.update`` body: the product id and the delivery to store."""
    try:
        webhook = msgspec.json.decode(raw_body, type=ProductUpdateWebhook)
    except msgspec.DecodeError as bad:
        raise MalformedWebhook(f"not a product.update payload: {bad}") from bad
    except RecursionError:
        raise MalformedWebhook("not a product.update payload: nested too deeply") from None
    key = kinguin_product_key(webhook.productId, webhook.updatedAt)
    delivery = Delivery.of("kinguin", key, "product.update", raw_body, headers)
    return webhook.productId, delivery
