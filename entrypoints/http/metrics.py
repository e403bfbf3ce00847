"""``GET /metrics`` — the engine's registry in Prometheus' text exposition format — the HTTP
request metrics, recorded by Litestar's Prometheus middleware into that registry, and the web
server's event-loop lag."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from litestar import Litestar, Response, get
from litestar._asgi.utils import wrap_in_exception_handler
from litestar.config.app import AppConfig
from litestar.enums import ScopeType
from litestar.plugins.prometheus import PrometheusConfig, PrometheusMiddleware
from litestar.types import ASGIApp, Scopes
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest as exposition
from typing_extensions import override

from entrypoints.http.deps import EngineDep

PREFIX = "bitloot_http"
# Litestar's label names, in the order its middleware passes their values
LABELS = ("method", "path", "status_code", "app_name")
HTTP_ONLY: Scopes = {ScopeType.HTTP}  # a websocket stays open for its whole session
LOOP_PROBE_S = 0.05
LOOP_LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@get("/metrics", exclude_from_auth=True, sync_to_thread=True, include_in_schema=False)
def metrics(engine: EngineDep) -> Response[bytes]:
    """Everything in the engine's registry; the gauges are read from the store now."""
    return Response(exposition(engine.metrics), media_type=CONTENT_TYPE_LATEST)


class HttpMetrics:
    """The request metrics Litestar's middleware records, in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            f"{PREFIX}_requests", "HTTP requests answered", LABELS, registry=registry
        )
        self.errors = Counter(
            f"{PREFIX}_requests_error", "HTTP requests answered 5xx", LABELS, registry=registry
        )
        self.seconds = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Time to answer an HTTP request",
            LABELS,
            registry=registry,
        )
        # Not exposed: Litestar labels it with a status code before there is one.
        self.in_progress = Gauge(f"{PREFIX}_requests_in_progress", "", LABELS, registry=None)


@dataclass(kw_only=True)
class EngineMetricsConfig(PrometheusConfig):
    """Litestar's Prometheus configuration, labelling requests by route template (bounded
    cardinality), for HTTP requests only."""

    http: HttpMetrics
    app_name: str = "bitloot"
    prefix: str = PREFIX
    group_path: bool = True
    scopes: Scopes | None = field(default_factory=lambda: set(HTTP_ONLY))
    middleware_class: type[PrometheusMiddleware] = field(
        default_factory=lambda: EngineMetricsMiddleware
    )

    def install(self, app_config: AppConfig) -> AppConfig:
        """``on_app_init`` hook, listed after the authentication ones: puts the middleware first
        (outermost), so that the requests authentication refuses are counted with their 401."""
        app_config.middleware.insert(0, self.middleware)
        return app_config


class EngineMetricsMiddleware(PrometheusMiddleware):
    """Litestar's Prometheus middleware, recording into the engine's registry rather than the
    process-global one, and seeing the status of a request an inner middleware refused."""

    def __init__(self, app: ASGIApp, config: EngineMetricsConfig) -> None:
        # Litestar renders an exception raised by a middleware (auth's 401) outside every
        # middleware; rendering it here, as Litestar does around handlers, lets this one see it.
        super().__init__(wrap_in_exception_handler(app), config)
        self._http = config.http

    @override
    def request_count(self, labels: dict[str, str | int | float]) -> Counter:
        """Requests answered."""
        return self._http.requests

    @override
    def requests_error_count(self, labels: dict[str, str | int | float]) -> Counter:
        """Requests answered 5xx."""
        return self._http.errors

    @override
    def request_time(self, labels: dict[str, str | int | float]) -> Histogram:
        """Request durations."""
        return self._http.seconds

    @override
    def requests_in_progress(self, labels: dict[str, str | int | float]) -> Gauge:
        """Requests in progress."""
        return self._http.in_progress


class EventLoopLag:
    """How late the web server's event loop wakes a task that asked to sleep ``LOOP_PROBE_S``:
    the time every request waited behind work that held the loop. A lifespan of the app."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._seconds = Histogram(
            "bitloot_event_loop_lag_seconds",
            "How late the API process's event loop ran a task that was due",
            buckets=LOOP_LAG_BUCKETS,
            registry=registry,
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Litestar) -> AsyncIterator[None]:
        """Probe the loop while the app runs."""
        probe = asyncio.create_task(self._probe())
        try:
            yield
        finally:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LOOP_PROBE_S
            await asyncio.sleep(LOOP_PROBE_S)
            self._seconds.observe(max(loop.time() - due, 0.0))
