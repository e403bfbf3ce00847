"""``GET /metrics`` (Prometheus text format) and the middleware that counts requests."""

from __future__ import annotations

import time
from typing import Any

from litestar import Response, get
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from adapters.metrics import Counters, gauge
from entrypoints.bootstrap import Engine
from entrypoints.http.deps import EngineDep
from projections.runner import ProjectionState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@get("/metrics", exclude_from_auth=True, sync_to_thread=True, include_in_schema=False)
def metrics(engine: EngineDep) -> Response[str]:
    """Counters of this process plus gauges read from the log and the projections."""
    lines = engine.metrics.render() + _gauges(engine)
    return Response("\n".join(lines) + "\n", media_type=CONTENT_TYPE)


def _gauges(engine: Engine) -> list[str]:
    head = engine.store.head()
    states: list[ProjectionState] = [r.state() for r in engine.projections.values()]
    by_status = engine.read_models.counts_by_status()
    latency = engine.read_models.dashboard()["fulfilment_latency_ms"]
    return [
        *gauge("bitloot_event_log_head", "Position of the newest event in the log", [({}, head)]),
        *gauge(
            "bitloot_projection_position",
            "Last log position applied by each projection",
            [({"projection": s.name}, s.position) for s in states],
        ),
        *gauge(
            "bitloot_projection_lag_events",
            "Events between the log head and each projection",
            [({"projection": s.name}, max(head - s.position, 0)) for s in states],
        ),
        *gauge(
            "bitloot_projection_failed",
            "1 when a projection is stopped at a failing event",
            [({"projection": s.name}, float(s.state == "failed")) for s in states],
        ),
        *gauge(
            "bitloot_orders",
            "Orders in each status",
            [({"status": status}, count) for status, count in sorted(by_status.items())],
        ),
        *gauge(
            "bitloot_orders_held",
            "Paid orders whose purchase waits for the supplier balance to be topped up",
            [({}, engine.read_models.held_orders())],
        ),
        *gauge(
            "bitloot_fulfilment_latency_median_ms",
            "Median time from payment to fulfilment",
            [({}, latency["median"] or 0.0)],
        ),
    ]


class RequestCounter:
    """ASGI middleware counting HTTP requests and their durations by route and status."""

    def __init__(self, app: ASGIApp, counters: Counters) -> None:
        self._app = app
        self._counters = counters
        counters.describe("bitloot_http_requests_total", "counter", "HTTP requests by status class")
        counters.describe(
            "bitloot_http_request_seconds_sum", "counter", "Total time spent answering requests"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the request and note its status class."""
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, noting)
        finally:
            labels = {
                "method": str(scope.get("method", "")),
                "status": f"{status['code'] // 100}xx",
            }
            self._counters.add("bitloot_http_requests_total", labels)
            self._counters.add(
                "bitloot_http_request_seconds_sum", amount=time.perf_counter() - started
            )
