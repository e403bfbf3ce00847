"""The Litestar application: routes, auth, error mapping, and — in the embedded wiring — the
built-in Kinguin and NOWPayments sandboxes, all wired to one engine."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from anyio import to_thread
from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import Provide
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
from litestar.types import ControllerRouterHandler

from entrypoints.bootstrap import WORKER_THREADS, Engine
from entrypoints.http import admin_pages, audit, catalog, keys, live, ops, orders, webhooks
from entrypoints.http.admin import ADMIN
from entrypoints.http.auth import Tokens, bearer_credential, retrieve_viewer, tokens_for
from entrypoints.http.deps import TOKENS
from entrypoints.http.metrics import EngineMetricsConfig, EventLoopLag, HttpMetrics, metrics
from entrypoints.http.openapi import openapi_config, openapi_plugins
from entrypoints.http.problems import exception_handlers
from entrypoints.settings import Settings
from sandboxes.callbacks import Callbacks
from sandboxes.control import ControlCheck
from sandboxes.kinguin import KinguinSandboxConfig, kinguin_sandbox
from sandboxes.nowpayments import NowPaymentsSandboxConfig, nowpayments_sandbox

MAX_BODY_BYTES = 1024 * 1024
PUBLIC_PATHS = [
    "^/healthz",
    "^/products",
    "^/readyz",
    "^/schema",
    "^/webhooks/",
    "^/kinguin/webhooks",
    "^/sandbox/",
    "^/downloads/",
    "^/ws/",
    "^/metrics",
    "^/admin$",  # the admin page checks its own credentials (bearer or cookie)
    "^/admin/static/",
    "^/audit/public-key",
]


def create_app(
    engine: Engine, *, worker: bool = True, followers: bool = True, threads: int = WORKER_THREADS
) -> Litestar:
    """The HTTP app; its lifespan starts and stops the engine's background parts."""

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        await to_thread.run_sync(
            lambda: engine.start(worker=worker, followers=followers, threads=threads)
        )
        try:
            yield
        finally:
            await tokens.aclose()
            await to_thread.run_sync(engine.stop)

    tokens = tokens_for(engine.settings, engine.revocations)  # beside the app, not in the engine
    auth = tokens.middleware(exclude=PUBLIC_PATHS)
    http_metrics = EngineMetricsConfig(http=HttpMetrics(engine.metrics))
    callbacks = Callbacks()  # the mounted sandboxes' one client for their webhooks
    return Litestar(
        route_handlers=[
            *orders.ROUTES,
            *audit.ROUTES,
            *catalog.PUBLIC_ROUTES,
            *keys.ROUTES,
            *live.ROUTES,
            metrics,
            *webhooks.ROUTES,
            *ops.ROUTES,
            ADMIN,
            admin_pages.admin_page,
            admin_pages.login,
            admin_pages.logout,
            admin_pages.static_files(),
            *sandboxes(engine, tokens, callbacks),
        ],
        dependencies={
            "engine": Provide(lambda: engine, sync_to_thread=False),
        },  # the one dependency of every handler (see entrypoints/http/deps.py)
        # the request metrics go around authentication, to count what it refuses
        on_app_init=[auth.on_app_init, http_metrics.install],
        guards=[audit.auditors_read_only],
        exception_handlers=exception_handlers(engine.outage),
        state=State({TOKENS: tokens}),
        request_max_body_size=MAX_BODY_BYTES,
        lifespan=[lifespan, EventLoopLag(engine.metrics).lifespan],
        openapi_config=openapi_config(),
        plugins=[*openapi_plugins(PUBLIC_PATHS), engine.live, callbacks, *_tracing(engine)],
    )


def _tracing(engine: Engine) -> list[OpenTelemetryPlugin]:
    """A span for every request, when tracing is on (``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
    if engine.tracing is None:
        return []
    return [OpenTelemetryPlugin(OpenTelemetryConfig(tracer_provider=engine.tracing.provider))]


def sandboxes(
    engine: Engine, tokens: Tokens, callbacks: Callbacks
) -> list[ControllerRouterHandler]:
    """The built-in sandboxes the settings mount (``SANDBOXES``), their controls for admins;
    their webhooks and IPNs go out through ``callbacks``."""
    settings = engine.settings
    check = admin_check(tokens)
    routers: list[ControllerRouterHandler] = []
    if "kinguin" in settings.sandboxes:
        kinguin = dataclasses.replace(
            kinguin_sandbox_config(settings), control_check=check, callbacks=callbacks
        )
        routers.append(kinguin_sandbox(kinguin))
    if "nowpayments" in settings.sandboxes:
        nowpayments = dataclasses.replace(
            nowpayments_sandbox_config(settings), control_check=check, callbacks=callbacks
        )
        routers.append(nowpayments_sandbox(nowpayments))
    return routers


def admin_check(tokens: Tokens) -> ControlCheck:
    """Whether a request carries an admin bearer token (for the sandboxes' controls, mounted
    or standalone)."""

    def check(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
        credential = bearer_credential(connection)
        token = tokens.decode(credential) if credential else None
        viewer = retrieve_viewer(token, connection) if token else None
        return viewer is not None and viewer.is_admin

    return check


def kinguin_sandbox_config(settings: Settings) -> KinguinSandboxConfig:
    """The Kinguin sandbox as the settings describe it (its controls get their check from
    the caller: ``sandboxes``, ``bitloot sandbox``)."""
    return KinguinSandboxConfig(
        api_key=settings.kinguin_api_key,
        webhook_secret=settings.kinguin_webhook_secret,
        webhook_url=settings.kinguin_webhook_url,
        delay_s=settings.kinguin_sandbox_delay,
        faults=settings.kinguin_faults,
        extra_products=settings.kinguin_sandbox_products,
        state_dir=settings.var_dir / "sandbox",
    )


def nowpayments_sandbox_config(settings: Settings) -> NowPaymentsSandboxConfig:
    """The NOWPayments sandbox as the settings describe it, signing its IPNs with a secret of
    its own (``NOWPAYMENTS_SANDBOX_IPN_SECRET``), never with the real ``NOWPAYMENTS_IPN_SECRET``:
    mounted or standalone, it must not be able to sign for a real shop."""
    return NowPaymentsSandboxConfig(
        api_key=settings.nowpayments_api_key,
        ipn_secret=settings.sandbox_ipn_secret,
        public_base_url=settings.public_base_url,
        faults=settings.nowpayments_faults,
        state_dir=settings.var_dir / "sandbox",
    )
