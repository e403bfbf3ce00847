"""What the OpenAPI document (``/schema/openapi.json``) says about access and failure, which the
handlers' signatures do not: who may call each operation (``security``) and the RFC 9457
problem documents it can answer (``responses``).

- **Security.** Public routes (the auth middleware's exclusions, ``exclude_from_auth``) declare
  none. The others take the ``bearer`` scheme (``Authorization: Bearer <JWT>``); the routes the
  admin console calls also take its session cookie, as a separate ``adminCookie`` scheme. The
  scheme Litestar's ``JWTCookieAuth`` declares on every route (one bearer scheme "in" the
  cookie) is replaced.
- **Errors.** Every operation lists the statuses it can answer with problem details, each
  with a ``ProblemDetails`` schema (``application/problem+json``): 400 where it takes
  parameters or a body, 401/403 where a token or a role is refused, 404 where it takes an id,
  413 where it reads a body, 503 where it reads the database or Redis, and what its use case
  raises (``problems.py`` maps those to statuses), from ``ROUTE_ERRORS``.
- **Scope.** The mounted sandboxes are left out: they stand in for Kinguin and NOWPayments, are
  not the engine's API, and describe themselves in the standalone sandbox app's document.

``OpenAPIContract`` applies all this while the app is built (an init plugin, and a route plugin
that sets each route handler's ``security`` and ``responses`` before the document is
generated), so every rendering of the document, and ``Litestar.openapi_schema``, agree.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from copy import copy
from typing import Any

import msgspec
from litestar import Router
from litestar.config.app import AppConfig
from litestar.constants import RESERVED_KWARGS
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import Components, SecurityRequirement, SecurityScheme
from litestar.plugins import InitPlugin
from litestar.plugins.base import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute

from entrypoints.http.audit import AUDITOR
from entrypoints.http.auth import COOKIE, CSRF_HEADER, CSRF_VALUE
from entrypoints.http.problems import PROBLEM_JSON, RETRY_AFTER_S
from entrypoints.http.schema import OPENAPI_PLUGINS

TITLE = "BitLoot fulfillment engine"
VERSION = "0.1.0"
BEARER = "bearer"
ADMIN_COOKIE = "adminCookie"
SANDBOX_PREFIX = "/sandbox"
AUTH_EXCLUDED = "exclude_from_auth"  # the ``opt`` key Litestar's auth middleware skips
# The routes the admin console (entrypoints/http/static/) calls with its cookie, besides its own
# under /admin/: an order's detail, history and evidence bundle (a download link).
CONSOLE_READS = frozenset(
    {
        ("GET", "/orders/{order_id}"),
        ("GET", "/orders/{order_id}/history"),
        ("GET", "/orders/{order_id}/evidence"),
    }
)

SECURITY_SCHEMES = {
    BEARER: SecurityScheme(
        type="http",
        scheme="bearer",
        bearer_format="JWT",
        description="`Authorization: Bearer <JWT>`: HS256, claims `sub`, `role` (user, admin, "
        "auditor), `exp` (and `iss`/`aud` when the engine is configured with them).",
    ),
    ADMIN_COOKIE: SecurityScheme(
        type="apiKey",
        name=COOKIE,
        security_scheme_in="cookie",
        description="The admin console's session (set by `POST /admin/login`). A request "
        f"other than GET that it alone authenticates must carry `{CSRF_HEADER}: {CSRF_VALUE}`.",
    ),
}


class FieldError(msgspec.Struct):
    """One refused part of a request, as a 400 lists it."""

    message: str
    key: str | msgspec.UnsetType = msgspec.UNSET
    source: str | msgspec.UnsetType = msgspec.UNSET


class ProblemDetails(msgspec.Struct):
    """An RFC 9457 problem document: every error the engine answers has this shape. Members
    beyond the standard five are extensions a status documents (``errors`` on a 400,
    ``product_id``/``current_price``/``available`` on a refused order, ``request_id`` on a
    500); others may be added."""

    title: str
    status: int
    type: str = "about:blank"
    detail: str | msgspec.UnsetType = msgspec.UNSET
    instance: str | msgspec.UnsetType = msgspec.UNSET
    errors: list[FieldError] | msgspec.UnsetType = msgspec.UNSET
    product_id: str | msgspec.UnsetType = msgspec.UNSET
    current_price: str | msgspec.UnsetType = msgspec.UNSET
    currency: str | msgspec.UnsetType = msgspec.UNSET
    available: int | msgspec.UnsetType = msgspec.UNSET
    request_id: str | msgspec.UnsetType = msgspec.UNSET


class Readiness(msgspec.Struct):
    """``GET /readyz``: ``status`` (``ready`` | ``not ready``) and each dependency's state."""

    status: str
    checks: dict[str, str]


BAD_REQUEST = (
    "Bad Request: a parameter or body the document rules out (each listed in `errors`), or a "
    "value the engine cannot read"
)
UNAUTHORIZED = (
    "Unauthorized: no token, or one malformed, expired, revoked, wrongly signed or with an "
    "unknown role"
)
COOKIE_UNAUTHORIZED = f"{UNAUTHORIZED}; a cookie-only request other than GET without {CSRF_HEADER}"
FORBIDDEN = (
    "Forbidden: the token's role may not use this route (a user on an admin route, an auditor "
    "outside the audit routes)"
)
NOT_FOUND = (
    "Not Found: nothing by this id, or not the caller's (an id of the wrong shape does not "
    "match the route)"
)
TOO_LARGE = "Request Entity Too Large: a body over 1 MiB"
UNAVAILABLE = (
    f"Service unavailable: the database or Redis cannot be reached for a moment (`Retry-After: "
    f"{RETRY_AFTER_S}`), or a write kept losing to concurrent ones (Busy, try again)"
)
ORDER_ALREADY = "Not possible in the order's current status"
KEYS_GONE = (
    "Keys destroyed (the order was shredded) / Keys are no longer readable (missing or not "
    "decrypting in the vault)"
)
REVEAL_LIMIT = "Too Many Requests: past `REVEALS_PER_MINUTE` for this user; see `Retry-After`"
SUPPLIER = "Supplier failed: Kinguin refused or failed during the request"
VAULT = f"{UNAVAILABLE}; or the key vault could not be reached (Key vault unavailable)"
WEBHOOK_BAD = "Bad Request: a body the provider's format does not allow"
WEBHOOK_TOO_LARGE = "Request Entity Too Large: a body over 64 KiB, refused before it is read"

ROUTE_ERRORS: Mapping[tuple[str, str], Mapping[int, str]] = {
    ("POST", "/orders"): {
        409: "Price changed / Product not for sale / Not enough stock: nothing was created "
        "(`product_id`, and `current_price` and `currency` or `available`)",
        422: "Invalid order (e-mail, currency, lines, quantities, prices; a pre-order with "
        "other lines) / Unknown product (`product_id`)",
        429: "Too Many Requests: past `ORDERS_PER_MINUTE` for this user or "
        "`ORDERS_PER_MINUTE_PER_IP` for this address; see `Retry-After`",
    },
    ("GET", "/orders/{order_id}"): {404: f"{NOT_FOUND}; or the order did not exist at `as_of`"},
    ("GET", "/orders/{order_id}/history"): {
        404: f"{NOT_FOUND}; or the order did not exist at `as_of`"
    },
    ("POST", "/payments/create"): {
        404: "Order not found: no such order, or not the caller's",
        409: f"{ORDER_ALREADY}: it takes no new invoice",
        429: "Too Many Requests: past `ORDERS_PER_MINUTE` invoices for this user or address; "
        "see `Retry-After`",
        502: "Payment provider failed: NOWPayments refused or failed during the request",
    },
    ("POST", "/fulfillment/{order_id}/reveal"): {
        409: f"{ORDER_ALREADY}: no keys delivered yet",
        410: KEYS_GONE,
        429: REVEAL_LIMIT,
        503: VAULT,
    },
    ("GET", "/fulfillment/{order_id}/download-link"): {
        409: f"{ORDER_ALREADY}: no keys delivered yet",
        410: KEYS_GONE,
        429: REVEAL_LIMIT,
    },
    ("GET", "/downloads/{order_id}"): {
        400: "Bad Request: `exp` is not a whole number of seconds",
        403: "Download link not valid: changed, expired, never issued, already used, or "
        "with a part missing or added",
        410: KEYS_GONE,
        429: "Too Many Requests: past `REVEALS_PER_MINUTE` downloads of this order; see "
        "`Retry-After`",
        503: VAULT,
    },
    ("GET", "/orders/{order_id}/evidence"): {
        503: f"{UNAVAILABLE}; or the log's tree does not reach the order yet (Evidence not "
        "ready, try again)"
    },
    ("GET", "/audit/checkpoints/latest"): {404: "Not Found: the log is empty, nothing signed"},
    ("GET", "/audit/consistency"): {
        404: "No such proof: `from` above `to`, or `to` beyond the tree"
    },
    ("GET", "/kinguin/status/{order_id}"): {
        404: f"{NOT_FOUND}; or the order has no supplier order yet",
        502: SUPPLIER,
    },
    ("POST", "/admin/orders/{order_id}/retry"): {
        409: f"{ORDER_ALREADY}: only a fulfillment_failed order is retried",
        502: SUPPLIER,
    },
    ("POST", "/admin/orders/{order_id}/refund"): {
        409: f"{ORDER_ALREADY}: the refund rules refuse it"
    },
    ("POST", "/admin/orders/{order_id}/return-keys"): {
        409: f"{ORDER_ALREADY}: the key-return rules (or Kinguin) refuse it",
        502: SUPPLIER,
    },
    ("POST", "/admin/orders/{order_id}/shred"): {
        409: f"{ORDER_ALREADY}: a paid or reserved order is not shredded"
    },
    ("POST", "/admin/orders/{order_id}/finish-return"): {
        409: f"{ORDER_ALREADY}: no key return is under way, or Kinguin refuses it",
        502: SUPPLIER,
    },
    ("POST", "/admin/orders/{order_id}/abandon-return"): {
        409: f"{ORDER_ALREADY}: no key return is under way, or Kinguin already took the keys",
        502: SUPPLIER,
    },
    ("POST", "/admin/orders/{order_id}/resume"): {
        409: f"{ORDER_ALREADY}: the purchase is not held for the supplier balance"
    },
    ("POST", "/admin/orders/{order_id}/resolve-flags"): {
        409: f"{ORDER_ALREADY}: the order has no payment flag"
    },
    ("POST", "/admin/orders/{order_id}/resend-email"): {
        409: f"{ORDER_ALREADY}: not fulfilled, keys destroyed or being returned, or the address "
        "erased",
        502: "Mail provider failed: Resend refused the e-mail or could not be reached",
    },
    ("POST", "/admin/catalog/sync"): {502: SUPPLIER},
    ("POST", "/admin/webhook-logs/{delivery_id}/replay"): {
        400: "Bad Request: the stored delivery cannot be replayed (its body is unreadable)",
        404: "Webhook delivery not found",
    },
    ("GET", "/admin/webhook-logs/{delivery_id}"): {404: "Webhook delivery not found"},
    ("POST", "/admin/projections/{name}/{action}"): {
        404: "Not Found: no such projection or action"
    },
    ("PUT", "/admin/pricing"): {
        422: "Invalid pricing rules: ranges, or a rounding ending no shop means"
    },
    ("POST", "/admin/pricing/preview"): {
        422: "Invalid pricing rules: ranges, or a rounding ending no shop means"
    },
    ("GET", "/admin/orders/{order_id}"): {404: "Order not found"},
    ("POST", "/webhooks/nowpayments/ipn"): {
        400: WEBHOOK_BAD,
        401: "Unauthorized: bad or missing `x-nowpayments-sig`; nothing recorded",
        413: WEBHOOK_TOO_LARGE,
    },
    ("POST", "/kinguin/webhooks"): {
        400: WEBHOOK_BAD,
        401: "Unauthorized: bad or missing `X-Event-Secret`; nothing recorded",
        413: WEBHOOK_TOO_LARGE,
    },
}
"""Per operation: the statuses its use case can answer, beyond those the rules give every
operation of its kind, and better descriptions of those."""

NO_STORE = frozenset({("GET", "/healthz"), ("GET", "/audit/public-key"), ("GET", "/readyz")})
"""Operations that read neither the database nor Redis (readiness answers its own 503)."""


def openapi_plugins(public_paths: Sequence[str]) -> list[Any]:
    """The plugins that shape the document: the schema plugins of ``schema.py`` and the
    contract (``public_paths``: the auth middleware's exclusions)."""
    return [*OPENAPI_PLUGINS, OpenAPIContract(public_paths)]


def openapi_config() -> OpenAPIConfig:
    """The document's configuration (its security schemes are ``OpenAPIContract``'s)."""
    return OpenAPIConfig(title=TITLE, version=VERSION)


class OpenAPIContract(InitPlugin, ReceiveRoutePlugin):
    """Declares each operation's security and problem-details responses (see the module
    docstring); ``public_paths`` are the auth middleware's exclusions."""

    def __init__(self, public_paths: Sequence[str]) -> None:
        self._public = re.compile("|".join(public_paths)) if public_paths else None

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Replace the auth middleware's document-wide security with the engine's schemes, and
        leave the mounted sandboxes out. Plugins run after ``on_app_init`` hooks, so the auth
        middleware has declared its scheme by now."""
        if app_config.openapi_config is not None:
            app_config.openapi_config = with_engine_schemes(app_config.openapi_config)
        for handler in app_config.route_handlers:
            _unlist_if_sandbox(handler)
        return app_config

    def receive_route(self, route: BaseRoute) -> None:
        """Set the security and error responses of the route's handlers (before the document
        is generated, which happens on its first request)."""
        if not isinstance(route, HTTPRoute):
            return
        for handler in route.route_handlers:
            public = self.is_public(route.path_format, handler)
            method = min(handler.http_methods)  # one each here (GET before HEAD, if both)
            handler.security = security_of(method, route.path_format, public=public)
            handler.responses = {
                **(handler.responses or {}),
                **error_responses(route, handler, method, public=public),
            }

    def is_public(self, path: str, handler: HTTPRouteHandler) -> bool:
        """Whether the auth middleware lets requests to this handler through without a token."""
        excluded = bool(self._public and self._public.search(path))
        return excluded or bool(handler.opt.get(AUTH_EXCLUDED))


def with_engine_schemes(config: OpenAPIConfig) -> OpenAPIConfig:
    """``config`` without document-wide security and with the engine's security schemes only
    (the components others declared are kept, less their security schemes)."""
    declared = config.components if isinstance(config.components, list) else [config.components]
    kept = [dataclasses.replace(c, security_schemes=None) for c in declared]
    engine = copy(config)  # as Litestar's auth does (``replace`` reads deprecated fields)
    engine.security = None
    engine.components = [*kept, Components(security_schemes=dict(SECURITY_SCHEMES))]
    return engine


def security_of(method: str, path: str, *, public: bool) -> list[SecurityRequirement] | None:
    """None for a public route; else the bearer scheme, or the cookie as an alternative where
    the console calls it."""
    if public:
        return None
    console = (method in {"GET", "POST", "PUT"} and path.startswith("/admin/")) or (
        (method, path) in CONSOLE_READS
    )
    return [{BEARER: []}, {ADMIN_COOKIE: []}] if console else [{BEARER: []}]


def error_responses(
    route: HTTPRoute, handler: HTTPRouteHandler, method: str, *, public: bool
) -> dict[int, ResponseSpec]:
    """The problem-details responses of one operation (``/readyz`` also gets its 503)."""
    statuses = dict(rule_statuses(route, handler, method, public=public))
    statuses.update(ROUTE_ERRORS.get((method, route.path_format), {}))
    responses = {
        status: ResponseSpec(
            data_container=ProblemDetails,
            generate_examples=False,
            description=description,
            media_type=PROBLEM_JSON,
        )
        for status, description in sorted(statuses.items())
    }
    if (method, route.path_format) == ("GET", "/readyz"):
        responses[503] = ResponseSpec(
            data_container=Readiness,
            generate_examples=False,
            description="Not ready: a dependency failed, or the first catalog import has not "
            "finished (`checks` says which)",
        )
    return responses


def rule_statuses(
    route: HTTPRoute, handler: HTTPRouteHandler, method: str, *, public: bool
) -> dict[int, str]:
    """The statuses every operation of this kind can answer, by what it takes and who may
    call it."""
    statuses: dict[int, str] = {}
    if takes_input(route, handler):
        statuses[400] = BAD_REQUEST
    if not public:
        cookie = security_of(method, route.path_format, public=False) != [{BEARER: []}]
        statuses[401] = COOKIE_UNAUTHORIZED if cookie else UNAUTHORIZED
        if refuses_a_role(handler):
            statuses[403] = FORBIDDEN
    if route.path_parameters:
        statuses[404] = NOT_FOUND
    if "data" in handler.parsed_fn_signature.parameters:
        statuses[413] = TOO_LARGE
    if (method, route.path_format) not in NO_STORE:
        statuses[503] = UNAVAILABLE
    return statuses


def takes_input(route: HTTPRoute, handler: HTTPRouteHandler) -> bool:
    """Whether the operation has path or query parameters or a body (Litestar validates them:
    400), as Litestar's own document decides it."""
    dependencies = handler.resolve_dependencies()
    names = handler.parsed_fn_signature.parameters
    declared = [n for n in names if n == "data" or n not in {*RESERVED_KWARGS, *dependencies}]
    return bool(route.path_parameters or declared)


def refuses_a_role(handler: HTTPRouteHandler) -> bool:
    """Whether some valid token is refused with 403: a route guarded beyond the app's own
    guard (admins only, auditors or admins), or one an auditor may not use."""
    guarded = any(layer.guards for layer in handler.ownership_layers[1:])
    return guarded or any(handler.opt.get(key) != value for key, value in AUDITOR.items())


def _unlist_if_sandbox(handler: Any) -> None:
    """Leave a mounted sandbox's router out of the document. It is changed in place: a copy
    would not own the routes it registered, and ``app.sandboxes`` builds one for each app."""
    if isinstance(handler, Router) and handler.path.startswith(SANDBOX_PREFIX):
        handler.include_in_schema = False
