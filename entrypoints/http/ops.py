"""Operator routes: liveness, readiness and the supplier's view of a reservation."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Response, get
from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath

from application.orders import Viewer
from domain.errors import OrderNotFound
from entrypoints.http.deps import Caller, EngineDep


def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: only tokens with role ``admin`` pass. A CORS preflight (``OPTIONS``, which skips
    authentication) carries no user and reads nothing: Litestar answers it with ``Allow``."""
    if connection.scope.get("method") == "OPTIONS":
        return
    user = connection.scope.get("user")
    if not isinstance(user, Viewer) or not user.is_admin:
        raise PermissionDeniedException("admin role required")


@get("/healthz", exclude_from_auth=True)
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@get("/readyz", exclude_from_auth=True, sync_to_thread=True)
def readyz(engine: EngineDep) -> Response[dict[str, Any]]:
    """The store, the broker and the vault answer, and the catalog has been imported (503
    with ``checks.catalog: empty`` until then: every order would be refused)."""
    checks = engine.readiness()
    ready = all(state == "ok" for state in checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return Response(body, status_code=200 if ready else 503)


@get("/kinguin/status/{order_id:uuid}", guards=[admin_only], sync_to_thread=True)
def kinguin_status(order_id: FromPath[UUID], request: Caller, engine: EngineDep) -> dict[str, Any]:
    """What Kinguin says about the order's purchase."""
    fulfillment = engine.fulfillment
    order = fulfillment.order(order_id, request.user)
    if order.supplier_order_id is None:
        raise OrderNotFound(f"order {order_id} has no supplier order yet")
    purchase = fulfillment.supplier_order(order.supplier_order_id)
    return {
        "order_id": str(order_id),
        "supplier_order_id": purchase.order_id,
        "order_external_id": purchase.external_id,
        "status": purchase.status,
    }


ROUTES = [healthz, readyz, kinguin_status]
