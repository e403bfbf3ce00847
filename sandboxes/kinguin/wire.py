"""What the Kinguin sandbox reads and writes on the wire: Kinguin's request, order, key,
balance, webhook and error shapes (EXTERNAL_APIS §1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

from sandboxes.kinguin.config import MAX_PRODUCTS_PER_ORDER, MAX_QTY_PER_PRODUCT

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
