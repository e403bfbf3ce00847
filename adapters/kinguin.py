"""Kinguin eCommerce API client (httpx), implementing ``application.ports.Supplier``; and the
parser of Kinguin's ``order.status`` webhooks.

Errors (from ``application.errors``):
SupplierError
├── SupplierRejected     4xx with a Kinguin error kind (ProductUnavailable, InsufficientBalance…)
└── SupplierUnavailable  429, 5xx, timeouts and connection failures: retry later
``MalformedWebhook`` — a webhook body that is not a Kinguin ``order.status`` payload.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import httpx
import msgspec

from application.errors import SupplierRejected, SupplierUnavailable
from application.ports import SupplierKey, SupplierOrder
from application.webhooks import Delivery
from domain.events import LineItem
from domain.order import order_id_from_reference
from domain.supply import SupplierNotice
from domain.webhooks import kinguin_key

KEYS_PAGE_SIZE = 100  # the documented maximum


class MalformedWebhook(ValueError):
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


class OrderStatusWebhook(msgspec.Struct, frozen=True):
    """The body of an ``order.status`` webhook."""

    orderId: str  # noqa: N815
    status: str
    updatedAt: str  # noqa: N815
    orderExternalId: str | None = None  # noqa: N815


class KinguinClient:
    """Talks to Kinguin (or its sandbox) over HTTP with ``X-Api-Key``."""

    def __init__(self, http: httpx.Client, keys_page_size: int = KEYS_PAGE_SIZE) -> None:
        self._http = http
        self._page_size = keys_page_size

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
            raise SupplierRejected(_describe_error(response))
        try:
            return msgspec.json.decode(response.content, type=type_)
        except msgspec.DecodeError as bad:
            raise SupplierUnavailable(f"Kinguin {method} {path}: unreadable answer") from bad


def _product(item: LineItem) -> dict[str, Any]:
    product: dict[str, Any] = {
        "productId": item.product_id,
        "qty": item.quantity,
        "price": float(item.unit_price),
    }
    if item.offer_id:
        product["offerId"] = item.offer_id
    return product


def _supplier_order(order: _Order) -> SupplierOrder:
    return SupplierOrder(
        order_id=order.orderId, external_id=order.orderExternalId, status=order.status
    )


def _describe_error(response: httpx.Response) -> str:
    try:
        error = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if not isinstance(error, dict):
        return f"HTTP {response.status_code}"
    return f"{error.get('kind', 'Error')} ({response.status_code}): {error.get('detail', '')}"


def parse_order_status(raw_body: bytes) -> OrderStatusWebhook:
    """Read an ``order.status`` webhook body."""
    try:
        return msgspec.json.decode(raw_body, type=OrderStatusWebhook)
    except msgspec.DecodeError as bad:
        raise MalformedWebhook(f"not an order.status payload: {bad}") from bad


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
    delivery = Delivery(
        provider="kinguin",
        natural_key=kinguin_key(webhook.orderId, webhook.status, webhook.updatedAt),
        event_name="order.status",
        body=raw_body.decode(errors="replace"),
        headers=dict(headers or {}),
    )
    order_id = order_id_from_reference(webhook.orderExternalId or "")
    return order_id, supplier_notice(webhook), delivery
