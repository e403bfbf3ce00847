"""Live order status over websockets: ``/ws/orders/{id}`` for its owner (or an admin) and
``/ws/admin`` for admins. The token comes in the handshake's subprotocols,
``Sec-WebSocket-Protocol: bearer, <JWT>``, and the socket is accepted with the subprotocol
``bearer``, so the token never sits in a URL (where proxies' logs and traces keep it).
``?token=`` is still taken, deprecated (one WARNING line per process, without the token). The
admin console's page, which cannot read its HttpOnly session cookie, is let in by that cookie
when the socket comes from a page of the same site.

On connect the socket receives the current status, then every change
``{"order_id","status","version","at"}``; a caller who may not see the order — an auditor
included: auditors read histories, not live updates — is closed with code 4403 before any
message (4401 for a missing or bad token, and 4401 again when the token expires while the
socket is open). The handler reads from the socket while it forwards, so a client that leaves
— or a server that stops — ends it at once."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import anyio
from anyio import to_thread
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.params import FromPath

from application.errors import LiveFeedUnavailable
from application.orders import Viewer
from application.ports import LiveFeed, Message
from domain.errors import OrderNotFound
from entrypoints.bootstrap import Engine
from entrypoints.http.auth import COOKIE, retrieve_viewer
from entrypoints.http.deps import EngineDep, tokens_of

log = logging.getLogger(__name__)

BEARER = "bearer"  # the subprotocol the client offers before its token, and the server answers
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TRY_AGAIN_LATER = 1013
ORDER_FIELDS = ("order_id", "status", "version", "at")


@websocket("/ws/orders/{order_id:str}")
async def order_updates(
    socket: WebSocket[Any, Any, Any], order_id: FromPath[str], engine: EngineDep
) -> None:
    """Status changes of one order, for its owner or an admin."""
    session = await _session(socket)
    if session is None:
        return
    viewer, expires_at = session
    if viewer.role == "auditor":
        await socket.close(code=CLOSE_FORBIDDEN, reason="owner or admin only")
        return
    parsed = _uuid(order_id)
    if parsed is None:
        await socket.close(code=CLOSE_FORBIDDEN, reason="not your order")
        return
    # subscribed before the status is read, so that no change falls between the two
    async with _subscribed(socket, engine.live, engine.live.order_channel(str(parsed))) as changes:
        if changes is None:
            return
        current = await _current(engine, parsed, viewer)
        if current is None:
            await socket.close(code=CLOSE_FORBIDDEN, reason="not your order")
            return
        await socket.send_json(current)
        await _forward(socket, changes, after=current["version"], expires_at=expires_at)


@websocket("/ws/admin")
async def admin_updates(socket: WebSocket[Any, Any, Any], engine: EngineDep) -> None:
    """Every order's status changes and the projections' state, for admins."""
    session = await _session(socket)
    if session is None:
        return
    viewer, expires_at = session
    if not viewer.is_admin:
        await socket.close(code=CLOSE_FORBIDDEN, reason="admin role required")
        return
    async with _subscribed(socket, engine.live, engine.live.admin_channel) as changes:
        if changes is None:
            return
        head = await to_thread.run_sync(engine.store.head)
        for runner in engine.projections.values():
            state = await to_thread.run_sync(runner.state)
            await socket.send_json(
                {"projection": state.name, "version": state.generation, "state": state.state,
                 "position": state.position, "head": head}
            )  # fmt: skip
        await _forward(socket, changes, after=None, expires_at=expires_at)


ROUTES = [order_updates, admin_updates]


@contextlib.asynccontextmanager
async def _subscribed(
    socket: WebSocket[Any, Any, Any], live: LiveFeed, channel: str
) -> AsyncIterator[AsyncIterator[Message] | None]:
    """The channel's messages; ``None`` (the socket closed with 1013) while the channels
    backend is unavailable."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            changes = await stack.enter_async_context(live.subscription(channel))
        except LiveFeedUnavailable:
            await socket.close(code=CLOSE_TRY_AGAIN_LATER, reason="live updates unavailable")
            changes = None
        yield changes


async def _forward(
    socket: WebSocket[Any, Any, Any],
    changes: AsyncIterator[Message],
    after: int | None,
    expires_at: datetime,
) -> None:
    """Relay changes until the client goes away, its token expires (closed with 4401), or the
    server shuts down (which the client hears as its going away)."""
    seconds_left = (expires_at - datetime.now(UTC)).total_seconds()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_relay, socket, changes, after, tasks.cancel_scope)
        with anyio.move_on_after(max(seconds_left, 0.0)) as expiry:
            await _until_closed(socket)
        tasks.cancel_scope.cancel()
    if expiry.cancelled_caught:
        await socket.close(code=CLOSE_UNAUTHORIZED, reason="token expired")


async def _relay(
    socket: WebSocket[Any, Any, Any],
    changes: AsyncIterator[Message],
    after: int | None,
    done: anyio.CancelScope,
) -> None:
    """Send each change newer than ``after`` (an order's fields only); stop the forwarding
    when the socket or the subscription ends."""
    with contextlib.suppress(WebSocketDisconnect):
        async for change in changes:
            if "order_id" in change:
                if after is not None and change["version"] <= after:
                    continue  # already covered by the status sent on connect
                change = {k: change[k] for k in ORDER_FIELDS}  # noqa: PLW2901 - trimmed
            await socket.send_json(change)
    done.cancel()


async def _until_closed(socket: WebSocket[Any, Any, Any]) -> None:
    """Read (and ignore) what the client sends until it disconnects."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await socket.receive_data(mode="text")


async def _session(socket: WebSocket[Any, Any, Any]) -> tuple[Viewer, datetime] | None:
    """Accept the socket, then who is asking and until when their token holds; closed with
    4401 without a valid token. (Accepted first in every case: a close code can only be sent
    on an open socket; before it, the client would hear a bare HTTP 403.)"""
    subprotocol, credential = offered_credential(socket)
    await socket.accept(subprotocols=subprotocol)
    decoded = await tokens_of(socket).decode_async(credential) if credential else None
    viewer = retrieve_viewer(decoded, socket) if decoded else None
    if decoded is None or viewer is None:
        await socket.close(code=CLOSE_UNAUTHORIZED, reason="a valid bearer token is required")
        return None
    return viewer, decoded.exp


def offered_credential(socket: WebSocket[Any, Any, Any]) -> tuple[str | None, str]:
    """The subprotocol to answer (``bearer`` when the client offered it) and the token: the
    subprotocol that follows ``bearer``, else the deprecated ``?token=``, else the admin
    console's session cookie from a page of this same site, else empty."""
    offered = [str(p) for p in socket.scope.get("subprotocols") or ()]
    if BEARER in offered:
        after = offered[offered.index(BEARER) + 1 :]
        return BEARER, after[0] if after else ""
    query_token = socket.query_params.get("token", "")
    if query_token:
        _query_token_deprecated()
        return None, query_token
    return None, _console_session(socket)


def _console_session(socket: WebSocket[Any, Any, Any]) -> str:
    """The session cookie, when the page that opened the socket is this site's own (its
    ``Origin`` names the host the socket was opened on): another site's page never rides on
    an admin's session, even where a browser would send the cookie."""
    origin = urlsplit(socket.headers.get("origin", ""))
    same_site = bool(origin.netloc) and origin.netloc == socket.headers.get("host")
    return socket.cookies.get(COOKIE, "") if same_site else ""


@functools.cache
def _query_token_deprecated() -> None:
    """Say once per process that a client still sends its token in the URL."""
    log.warning(
        "a websocket client sent its token as ?token= (deprecated: URLs reach logs and traces); "
        "send it as Sec-WebSocket-Protocol: bearer, <JWT>"
    )


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
