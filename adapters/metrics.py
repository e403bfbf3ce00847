"""Prometheus metrics of one engine, kept in its own ``CollectorRegistry`` (never the process-global
default one: a test process builds several engines).

- ``EngineGauges`` reads the log head, the projections and the orders read model at scrape time;
- ``FulfilmentLatency`` observes the time from ``OrderPaid`` to ``OrderFulfilled`` as the process
  manager's follower of the log sees each order fulfilled;
- ``ActorMetrics`` is a Dramatiq middleware counting each actor's runs, failures and retries and
  timing them, in the process that runs the actors.

The HTTP request metrics are Litestar's (``entrypoints/http/metrics.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

import dramatiq
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from typing_extensions import override

from domain.events import DomainEvent, OrderFulfilled, OrderPaid

# Paid → fulfilled takes tens of milliseconds to minutes; a pre-order waits for its release.
FULFILMENT_BUCKETS = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    900.0,
    3600.0,
    21600.0,
    86400.0,
)
PAID_REMEMBERED = 10_000  # payments awaiting fulfilment the latency histogram keeps in mind
# An actor run makes a few supplier or vault calls of at most 10 s each.
ACTOR_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class ProjectionReading(NamedTuple):
    """Where one projection stands."""

    name: str
    position: int
    failed: bool


@dataclass(frozen=True, kw_only=True)
class Readings:
    """What the engine reports at scrape time."""

    head: int
    projections: Sequence[ProjectionReading] = ()
    orders_by_status: dict[str, int] = field(default_factory=dict)
    orders_held: int = 0
    fulfilment_latency_median_ms: float = 0.0


class EngineGauges(Collector):
    """The engine's gauges, read (through ``read``) each time the registry is collected."""

    def __init__(self, read: Callable[[], Readings]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        """One reading, as gauge families."""
        now = self._read()
        yield GaugeMetricFamily(
            "bitloot_event_log_head", "Position of the newest event in the log", value=now.head
        )
        projections = now.projections
        yield _labelled(
            "bitloot_projection_position",
            "Last log position applied by each projection",
            "projection",
            [(p.name, p.position) for p in projections],
        )
        yield _labelled(
            "bitloot_projection_lag_events",
            "Events between the log head and each projection",
            "projection",
            [(p.name, max(now.head - p.position, 0)) for p in projections],
        )
        yield _labelled(
            "bitloot_projection_failed",
            "1 when a projection is stopped at a failing event",
            "projection",
            [(p.name, float(p.failed)) for p in projections],
        )
        yield _labelled(
            "bitloot_orders",
            "Orders in each status",
            "status",
            sorted(now.orders_by_status.items()),
        )
        yield GaugeMetricFamily(
            "bitloot_orders_held",
            "Paid orders whose purchase waits for the supplier balance to be topped up",
            value=now.orders_held,
        )
        yield GaugeMetricFamily(
            "bitloot_fulfilment_latency_median_ms",
            "Median time from payment to fulfilment",
            value=now.fulfilment_latency_median_ms,
        )


def _labelled(
    name: str, text: str, label: str, samples: Iterable[tuple[str, float]]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text, labels=[label])
    for value_of_label, value in samples:
        family.add_metric([value_of_label], value)
    return family


class FulfilmentLatency:
    """Observes, for each ``OrderFulfilled`` of the log, the seconds since the order's last
    ``OrderPaid``: remembered as it went by (the latest ``PAID_REMEMBERED`` payments), or else
    read from the order's events, so a restart between the two loses nothing."""

    def __init__(
        self, registry: CollectorRegistry, load: Callable[[UUID], Sequence[DomainEvent]]
    ) -> None:
        self._load = load
        self._paid: dict[UUID, datetime] = {}
        self._seconds = Histogram(
            "bitloot_paid_to_fulfilled_seconds",
            "Time from an order's payment to its fulfilment",
            buckets=FULFILMENT_BUCKETS,
            registry=registry,
        )

    def after(self, handle: Callable[[DomainEvent], None]) -> Callable[[DomainEvent], None]:
        """``handle``, then the observation (so an event ``handle`` fails on is not counted
        twice when the follower hands it over again)."""

        def handled(event: DomainEvent) -> None:
            handle(event)
            if isinstance(event, OrderPaid):
                self._remember(event)
            elif isinstance(event, OrderFulfilled):
                self.observe(event)

        return handled

    def observe(self, fulfilled: OrderFulfilled) -> None:
        """Observe one fulfilment."""
        paid = self._paid.pop(fulfilled.originator_id, None)
        if paid is None:
            events = self._load(fulfilled.originator_id)
            paid = max((e.timestamp for e in events if isinstance(e, OrderPaid)), default=None)
        if paid is not None:
            self._seconds.observe(max((fulfilled.timestamp - paid).total_seconds(), 0.0))

    def _remember(self, paid: OrderPaid) -> None:
        self._paid.pop(paid.originator_id, None)  # paid again: the latest one counts
        self._paid[paid.originator_id] = paid.timestamp
        if len(self._paid) > PAID_REMEMBERED:
            del self._paid[next(iter(self._paid))]  # the oldest


class ActorMetrics(dramatiq.Middleware):
    """Counts each actor's runs, failed runs and retried runs, and times them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, text: str) -> Counter:
            return Counter(name, text, ["actor"], registry=registry)

        self._messages = counter("bitloot_actor_messages", "Actor runs finished (any outcome)")
        self._failures = counter("bitloot_actor_failures", "Actor runs that raised")
        self._retries = counter("bitloot_actor_retries", "Actor runs that were a retry")
        self._seconds = Histogram(
            "bitloot_actor_duration_seconds",
            "Time an actor run took",
            ["actor"],
            buckets=ACTOR_BUCKETS,
            registry=registry,
        )
        self._started: dict[str, float] = {}

    @override
    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """Note the start, and whether this run is a retry."""
        self._started[message.message_id] = time.perf_counter()
        if message.options.get("retries", 0) > 0:
            self._retries.labels(message.actor_name).inc()

    @override
    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """Count and time the run."""
        started = self._started.pop(message.message_id, None)
        if started is not None:
            self._seconds.labels(message.actor_name).observe(time.perf_counter() - started)
        self._messages.labels(message.actor_name).inc()
        if exception is not None:
            self._failures.labels(message.actor_name).inc()

    @override
    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """A message another middleware skipped did not run."""
        self._started.pop(message.message_id, None)
