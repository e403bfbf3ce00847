"""Tamper-evidence routes: the checkpoint signing key, signed checkpoints, consistency proofs
and per-order evidence bundles (see docs/audit.md for the formats).

The ``auditor`` role reaches these routes, order histories and key audits, and nothing else:
``auditors_read_only`` guards every route, and a route lets auditors in with ``AUDITOR``.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import get
from litestar.connection import ASGIConnection
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, QueryParameter

from application.evidence import checkpoint_view
from application.orders import Viewer
from application.ports import Checkpoint
from entrypoints.http.customer_views import customer_entry
from entrypoints.http.deps import Caller, EngineDep
from entrypoints.http.schema import Cursor, Limit
from entrypoints.http.views import history_view
from projections.queries import BadCursor

AUDITOR = {"auditor": True}  # ``opt`` of the routes an auditor may use
MAX_SIZE = 10**15  # a bound beyond any log, exact in JSON numbers (the document states it)


async def auditors_read_only(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Guard of the whole app: a token with role ``auditor`` passes only where ``AUDITOR``.
    A coroutine, so that it runs on the event loop: Litestar runs a plain function guard in a
    worker thread, and every request (the mounted sandboxes' too) would then wait for one."""
    user = connection.scope.get("user")
    if isinstance(user, Viewer) and user.role == "auditor" and not handler.opt.get("auditor"):
        raise PermissionDeniedException(
            "the auditor role reads order histories, key audits and evidence only"
        )


async def auditor_or_admin(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Guard: only auditors and admins pass (on the event loop, as above)."""
    user = connection.scope.get("user")
    if not isinstance(user, Viewer) or not user.reads_every_order:
        raise PermissionDeniedException("auditor or admin role required")


@get("/audit/public-key", exclude_from_auth=True)
async def public_key(engine: EngineDep) -> dict[str, str]:
    """The Ed25519 key that signs checkpoints: ``{"algorithm","public_key","key_id"}``
    (``public_key``: the raw 32 bytes in base64). ``bitloot evidence verify --public-key``
    reads exactly this."""
    return engine.evidence.public_key()


@get("/audit/checkpoints", guards=[auditor_or_admin], opt=AUDITOR, sync_to_thread=True)
def list_checkpoints(engine: EngineDep, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    """Signed checkpoints, oldest first, ``{"items","next_cursor"}``."""
    after = _checkpoint_cursor(cursor)
    page = engine.evidence.checkpoints(after, limit + 1)
    items = [_listed(c) for c in page[:limit]]
    return {"items": items, "next_cursor": str(page[limit - 1].id) if len(page) > limit else None}


@get("/audit/checkpoints/latest", guards=[auditor_or_admin], opt=AUDITOR, sync_to_thread=True)
def latest_checkpoint(engine: EngineDep) -> dict[str, Any]:
    """The newest checkpoint (one is signed now if the log has events and none exists yet)."""
    checkpoint = engine.evidence.latest() or engine.evidence.checkpoint()
    if checkpoint is None:
        raise NotFoundException("the log is empty: nothing has been signed yet")
    return _listed(checkpoint)


@get("/audit/consistency", guards=[auditor_or_admin], opt=AUDITOR, sync_to_thread=True)
def consistency(
    engine: EngineDep,
    first: Annotated[int, QueryParameter(name="from", ge=1, le=MAX_SIZE, description="older size")],
    second: Annotated[int, QueryParameter(name="to", ge=1, le=MAX_SIZE, description="newer size")],
) -> dict[str, Any]:
    """The RFC 9162 proof that the tree of ``to`` leaves extends the tree of ``from`` leaves:
    ``{"first","second","first_root","second_root","proof":[hex…]}``. No such proof (``from``
    above ``to``, or ``to`` beyond the tree) answers 404."""
    return engine.evidence.consistency(first, second)


@get("/orders/{order_id:uuid}/evidence", opt=AUDITOR, sync_to_thread=True)
def order_evidence(order_id: FromPath[UUID], request: Caller, engine: EngineDep) -> dict[str, Any]:
    """The order's events as Merkle leaves with their inclusion proofs and the signed
    checkpoint they lead to. The owner gets the events whose data holds staff-only fields as
    their leaf hashes alone (``state`` null, ``redacted`` true): proven, not shown."""
    viewer = request.user
    events = engine.fulfillment.history(order_id, viewer)  # 404 unless the viewer may see it
    bundle = engine.evidence.bundle(order_id)
    if viewer.reads_every_order:
        return bundle
    full = history_view(events)
    shown = {e["version"] for e in full if customer_entry(e, viewer.sub)["data"] == e["data"]}
    for leaf in bundle["leaves"]:
        if leaf["version"] not in shown:
            leaf["state"], leaf["redacted"] = None, True
    return bundle


def _listed(checkpoint: Checkpoint) -> dict[str, Any]:
    """A checkpoint as the audit routes list it: as signed, with its ``id`` (the cursor)."""
    return checkpoint_view(checkpoint) | {"id": checkpoint.id}


def _checkpoint_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    if not cursor.isdigit() or len(cursor) > 18:
        raise BadCursor("this cursor was not handed out by /audit/checkpoints")
    return int(cursor)


ROUTES = [public_key, list_checkpoints, latest_checkpoint, consistency, order_evidence]
