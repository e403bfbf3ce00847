"""Key routes: reveal to the owner, 15-minute download links that carry their own proof, and
the key-access audit. Every read is recorded with IP and user agent."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Request, Response, get, post
from litestar.exceptions import TooManyRequestsException, ValidationException
from litestar.params import FromPath, PathParameter, QueryParameter

from application.key_access import RevealedKey
from domain.errors import LinkRefused
from entrypoints.bootstrap import Engine
from entrypoints.http.audit import AUDITOR
from entrypoints.http.deps import Caller, EngineDep
from entrypoints.http.schema import DIGITS_PATTERN
from entrypoints.http.views import is_number

LINK_PARAMS = frozenset({"lid", "exp", "sig"})


@post("/fulfillment/{order_id:uuid}/reveal", sync_to_thread=True, status_code=200)
def reveal(order_id: FromPath[UUID], request: Caller, engine: EngineDep) -> dict[str, Any]:
    """The owner's keys in clear (rate-limited per user); the read is recorded."""
    viewer = request.user
    _within_limit(engine, viewer.sub, "reveals")
    revealed = engine.keys.reveal(order_id, viewer, ip=_ip(request), user_agent=_agent(request))
    return _keys_view(order_id, revealed)


@get("/fulfillment/{order_id:uuid}/download-link", sync_to_thread=True)
def download_link(order_id: FromPath[UUID], request: Caller, engine: EngineDep) -> dict[str, str]:
    """A link to the keys valid for 15 minutes; the link itself is the proof (rate-limited per
    user, as reveals are)."""
    viewer = request.user
    _within_limit(engine, f"link:{viewer.sub}", "download links")
    link = engine.keys.issue_link(order_id, viewer)
    url = engine.links.url(order_id, link.link_id, link.expires_at)
    return {"url": url, "expires_at": link.expires_at.isoformat()}


def _link_part(description: str, **schema: Any) -> Any:
    """A part of a download link: required in the document; a link without it (or with any
    other parameter) is refused with 403 by the handler, not with Litestar's 400."""
    return QueryParameter(
        description=description,
        required=True,
        schema_extra={"one_of": None, "type": "string", **schema},
    )


@get("/downloads/{order_id:str}", sync_to_thread=True)
def download(
    order_id: Annotated[
        str, PathParameter(description="the order id of the link (a UUID; else 403)")
    ],
    request: Request[Any, Any, Any],
    engine: EngineDep,
    *,
    lid: Annotated[str | None, _link_part("the link id")] = None,
    exp: Annotated[
        str | None,
        _link_part(
            "expiry, in seconds since 1970 (ASCII digits; anything else answers 400)",
            pattern=DIGITS_PATTERN,
        ),
    ] = None,
    sig: Annotated[str | None, _link_part("the link's signature")] = None,
) -> Response[dict[str, Any]]:
    """Follow a download link: any change to it, or expiry, answers 403. The link is read from
    the query as received (``lid``, ``exp`` and ``sig`` once each, nothing else)."""
    del lid, exp, sig  # declared for the document; read below, where repeats show
    params = request.query_params
    if set(params.keys()) != LINK_PARAMS or any(len(params.getall(k)) != 1 for k in LINK_PARAMS):
        raise LinkRefused("this download link is not valid")
    if not is_number(params["exp"]):
        raise ValidationException(
            "exp must be a whole number of seconds",
            extra=[{"key": "exp", "message": "not a number"}],
        )
    parsed = _uuid_or_refuse(order_id)
    if not engine.links.verify(parsed, params["lid"], params["exp"], params["sig"]):
        raise LinkRefused("this download link is not valid")
    _within_limit(engine, f"download:{parsed}", "downloads of this order")
    revealed = engine.keys.download(
        parsed, params["lid"], int(params["exp"]), ip=_ip(request), user_agent=_agent(request)
    )
    return Response(_keys_view(parsed, revealed), headers={"Cache-Control": "no-store"})


@get("/fulfillment/{order_id:uuid}/audit", opt=AUDITOR, sync_to_thread=True)
def fulfillment_audit(
    order_id: FromPath[UUID], request: Caller, engine: EngineDep
) -> dict[str, Any]:
    """Who read the order's keys, when, from where (owner, admin or auditor)."""
    engine.fulfillment.order(order_id, request.user)  # 404 unless the caller may see the order
    return {"order_id": str(order_id), "accesses": engine.read_models.key_audit(order_id)}


ROUTES = [reveal, download_link, download, fulfillment_audit]


def _within_limit(engine: Engine, key: str, what: str) -> None:
    """Count one read of keys under ``key``; past ``REVEALS_PER_MINUTE`` in a minute, 429 with
    ``Retry-After``."""
    wait = engine.reveal_limit.allow(key)
    if wait:
        raise TooManyRequestsException(
            f"too many {what}; try again shortly", headers={"Retry-After": str(int(wait) + 1)}
        )


def _keys_view(order_id: UUID, keys: list[RevealedKey]) -> dict[str, Any]:
    return {
        "order_id": str(order_id),
        "keys": [
            {
                "key_id": k.key_id,
                "product_id": k.product_id,
                "content_type": k.content_type,
                "serial": k.serial,
            }
            for k in keys
        ],
    }


def _uuid_or_refuse(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise LinkRefused("this download link is not valid") from None


def _ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


def _agent(request: Request[Any, Any, Any]) -> str:
    return request.headers.get("user-agent", "")
