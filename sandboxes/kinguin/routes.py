"""The Kinguin sandbox's routes: the catalog, orders and keys under Kinguin's paths, and the
controls."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, Router, get, post
from litestar.exceptions import ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery, QueryParameter, RawBody

from sandboxes.control import (
    CONTROL_OPT,
    SandboxControlError,
    control_guards,
    fault_routes,
    is_control_route,
    on_control_error,
)
from sandboxes.kinguin.catalog import (
    KinguinProduct,
    KinguinProductPage,
)
from sandboxes.kinguin.config import DEFAULT_PAGE_LIMIT, KinguinSandboxConfig
from sandboxes.kinguin.params import (
    ProductSearchParams,
    decode_order,
    on_api_error,
    on_validation_error,
    product_query,
)
from sandboxes.kinguin.service import KinguinSandbox
from sandboxes.kinguin.wire import (
    KinguinApiError,
    KinguinBalance,
    KinguinKey,
    KinguinOrder,
    KinguinOrderKey,
    KinguinOrderPage,
)

# --- routes ------------------------------------------------------------------------------------


def kinguin_sandbox(config: KinguinSandboxConfig) -> Router:
    """Build a Router simulating the Kinguin eCommerce API, with its own in-memory state.

    Raises ``InvalidFaults`` (a ``ValueError``) if ``config.faults`` is invalid.
    """
    sandbox = KinguinSandbox(config)

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
            KinguinApiError: on_api_error,
            ValidationException: on_validation_error,
            SandboxControlError: on_control_error,
        },
        tags=["sandbox: kinguin"],
    )


def _route_handlers(sandbox: KinguinSandbox) -> list[HTTPRouteHandler]:
    """The routes of one sandbox; each handler only translates and delegates."""
    return [*_catalog_routes(sandbox), *_order_routes(sandbox), *_control_routes(sandbox)]


def _catalog_routes(sandbox: KinguinSandbox) -> list[HTTPRouteHandler]:
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
        return sandbox.products(page, limit, product_query(params))

    @get("/v1/products/{kinguin_id:str}")
    async def product_v1(kinguin_id: FromPath[str]) -> KinguinProduct:
        return sandbox.product_by_kinguin_id(kinguin_id)

    @get("/v2/products/{product_id:str}")
    async def product_v2(product_id: FromPath[str]) -> KinguinProduct:
        return sandbox.product_by_id(product_id)

    return [search_products, product_v1, product_v2]


def _order_routes(sandbox: KinguinSandbox) -> list[HTTPRouteHandler]:
    """Orders, keys, key returns and the balance."""

    @post("/v2/order", status_code=201)
    async def place_order(body: RawBody) -> KinguinOrder:
        return sandbox.place(decode_order(body))

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


def _control_routes(sandbox: KinguinSandbox) -> list[HTTPRouteHandler]:
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
