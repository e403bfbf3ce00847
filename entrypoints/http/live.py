"""Live order status over websockets: ``/ws/orders/{id}`` for its owner (or an admin) and
``/ws/admin`` for admins. The token comes as ``?token=``. On connect the socket receives the
current status, then every change ``{"order_id","status","version","at"}``; a caller who may not
see the order is closed with code 4403 before any message (4401 for a missing or bad token)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from uuid import UUID

from anyio import to_thread
from litestar import WebSocket, websocket
from litestar.exceptions import NotAuthorizedException, WebSocketDisconnect
from litestar.params import FromPath

from adapters.live import Message, Subscription
from application.orders import Viewer
from domain.errors import OrderNotFound
from entrypoints.bootstrap import Engine
from entrypoints.http.auth import ALGORITHM, BitLootToken, retrieve_viewer
from entrypoints.http.deps import EngineDep

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
ORDER_FIELDS = ("order_id", "status", "version", "at")


@websocket("/ws/orders/{order_id:str}")
async def order_updates(
    socket: WebSocket[Any, Any, Any], order_id: FromPath[str], engine: EngineDep
) -> None:
    """Status changes of one order, for its owner or an admin."""
    await socket.accept()
    viewer = await _viewer(socket, engine)
    if viewer is None:
        return
    parsed = _uuid(order_id)
    subscription = engine.live.subscribe(lambda m: m.get("order_id") == order_id)
    try:
        current = await _current(engine, parsed, viewer) if parsed else None
        if current is None:
            await socket.close(code=CLOSE_FORBIDDEN, reason="not your order")
            return
        await socket.send_json(current)
        await _forward(socket, subscription, after=current["version"])
    finally:
        engine.live.unsubscribe(subscription)


@websocket("/ws/admin")
async def admin_updates(socket: WebSocket[Any, Any, Any], engine: EngineDep) -> None:
    """Every order's status changes and the projections' state, for admins."""
    await socket.accept()
    viewer = await _viewer(socket, engine)
    if viewer is None:
        return
    if not viewer.is_admin:
        await socket.close(code=CLOSE_FORBIDDEN, reason="admin role required")
        return
    subscription = engine.live.subscribe(lambda _m: True)
    try:
        head = await to_thread.run_sync(engine.store.head)
        for runner in engine.projections.values():
            state = await to_thread.run_sync(runner.state)
            await socket.send_json(
                {"projection": state.name, "version": state.generation, "state": state.state,
                 "position": state.position, "head": head}
            )  # fmt: skip
        await _forward(socket, subscription, after=None)
    finally:
        engine.live.unsubscribe(subscription)


ROUTES = [order_updates, admin_updates]


async def _forward(
    socket: WebSocket[Any, Any, Any], subscription: Subscription, after: int | None
) -> None:
    """Relay messages until the client goes away (or the server shuts down)."""
    gone = asyncio.ensure_future(_until_closed(socket))
    try:
        while True:
            message = asyncio.ensure_future(subscription.queue.get())
            await asyncio.wait({message, gone}, return_when=asyncio.FIRST_COMPLETED)
            if gone.done():
                message.cancel()
                return
            change: Message = message.result()
            if "order_id" in change:
                if after is not None and change["version"] <= after:
                    continue  # already covered by the status sent on connect
                change = {k: change[k] for k in ORDER_FIELDS}
            await socket.send_json(change)
    except WebSocketDisconnect:
        return
    finally:
        gone.cancel()


async def _until_closed(socket: WebSocket[Any, Any, Any]) -> None:
    """Read (and ignore) what the client sends until it disconnects."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await socket.receive_data(mode="text")


async def _viewer(socket: WebSocket[Any, Any, Any], engine: Engine) -> Viewer | None:
    token = socket.query_params.get("token", "")
    try:
        decoded = BitLootToken.decode(token, engine.settings.jwt_secret, ALGORITHM)
    except NotAuthorizedException:
        decoded = None
    viewer = retrieve_viewer(decoded, socket) if decoded else None
    if viewer is None:
        await socket.close(code=CLOSE_UNAUTHORIZED, reason="a valid ?token= is required")
    return viewer


async def _current(engine: Engine, order_id: UUID, viewer: Viewer) -> dict[str, Any] | None:
    try:
        order = await to_thread.run_sync(engine.fulfillment.order, order_id, viewer)
    except OrderNotFound:
        return None
    return {
        "order_id": str(order.id),
        "status": order.status.value,
        "version": order.version,
        "at": order.updated_at.isoformat(),
    }


def _uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None
