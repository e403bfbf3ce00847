"""Reading the Kinguin sandbox's requests as Kinguin does (query parameters, order bodies),
and answering their errors in Kinguin's shape."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import ValidationException

from sandboxes.kinguin.catalog import (
    MIN_NAME_QUERY,
    SORT_FIELDS,
    ProductQuery,
    SortBy,
    parse_query_time,
)
from sandboxes.kinguin.config import KINGUIN_ID, MAX_PAGE_LIMIT, MSGSPEC_PATH
from sandboxes.kinguin.rules import kinguin_time, system_now
from sandboxes.kinguin.wire import KinguinApiError, KinguinErrorBody, KinguinPlaceOrderRequest


def check_page(page: int, limit: int) -> None:
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


def product_query(params: ProductSearchParams) -> ProductQuery:
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
    if not all(KINGUIN_ID.match(item) for item in items):
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


def decode_order(body: bytes) -> KinguinPlaceOrderRequest:
    """Decode ``POST /v2/order``; map msgspec failures to Kinguin errors."""
    try:
        return msgspec.json.decode(body, type=KinguinPlaceOrderRequest)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = MSGSPEC_PATH.search(message)
        raise KinguinApiError(
            400, "ConstraintViolation", message, match.group("path") if match else None
        ) from exc
    except msgspec.DecodeError as exc:
        raise KinguinApiError(400, "Http", f"Invalid JSON body: {exc}") from exc


def on_api_error(
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
        timestamp=kinguin_time(system_now()),
        property_path=error.property_path,
    )
    return Response(body, status_code=error.status, headers=error.headers)


def on_validation_error(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[KinguinErrorBody]:
    """Malformed query parameters (e.g. ``page=abc``) answer like Kinguin, not like Litestar."""
    problems = [item for item in exc.extra or [] if isinstance(item, dict)]
    if not problems:
        return on_api_error(request, KinguinApiError(400, "ConstraintViolation", exc.detail))
    key = str(problems[0].get("key"))
    detail = f'Invalid "{key}" value: {problems[0].get("message")}'
    return on_api_error(request, KinguinApiError(400, "ConstraintViolation", detail, key))


UNAUTHORIZED_BODY = {
    "kind": "Authorization",
    "status": 401,
    "detail": "Invalid authentication data.",
    "type": "Unauthorized",
}
