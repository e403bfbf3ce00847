"""The composition root: builds every adapter from the settings and wires the use cases.

The HTTP app, the worker and the CLI all start here; nothing connects anywhere before
``bootstrap`` is called.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

import dramatiq
from prometheus_client import CollectorRegistry

from adapters import kinguin as kinguin_api
from adapters import nowpayments as nowpayments_api
from adapters.batch_loop import BatchLoop
from adapters.broker import (
    BackgroundWorker,
    DramatiqDispatcher,
    declare_actors,
)
from adapters.checkpoints import CheckpointTable
from adapters.crypto import MasterKeys
from adapters.custody import EnvelopeCustody
from adapters.eventstore import RecorderEventStore, open_event_store
from adapters.links import LinkSigner
from adapters.live import LiveUpdates
from adapters.log_follower import LogFollower, PostgresWakeUp
from adapters.log_reader import Consumer, LogReader
from adapters.metrics import (
    ActorMetrics,
    EngineGauges,
    FulfilmentLatency,
    ProjectionReading,
    Readings,
)
from adapters.nowpayments_signature import IpnSignatures
from adapters.outages import log_failure, outage, unavailable
from adapters.rate_limit import MEMORY, rate_limiter
from adapters.revocations import MemoryRevocations, RedisRevocations
from adapters.snapshots import ProductSnapshots
from adapters.tracing import TraceMessages, Tracing
from adapters.vault import BlobVault
from adapters.views import schema_lock
from application.balance import BalanceWatch
from application.catalog import Catalog, Reconciler
from application.customers import CustomerData
from application.evidence import Evidence
from application.fulfillment import Fulfillment, RetryPolicy
from application.key_access import KeyAccess
from application.notifications import Notifier
from application.orders import Orders
from application.ports import Clock, Mailer, PaymentGateway, Signer, Supplier
from application.process_manager import ProcessManager
from application.refunds import Refunds
from application.sweeper import Sweeper
from application.webhooks import Readers, WebhookInbox
from entrypoints.settings import Settings
from entrypoints.wiring import Outside, open_views, outside
from projections.catalog import all_projections
from projections.merkle import TreeTable
from projections.queries import STUCK_LIMIT as SWEEP_LIMIT
from projections.queries import ReadModels
from projections.runner import ProjectionRunner

log = logging.getLogger(__name__)
BALANCE_POLL_S = 1.0  # how often the balance loop asks whether an observation is due (a clock read)
RECONCILE_POLL_S = 0.25  # how often the reconciliation loop asks whether a sync is due
STARTUP_WAIT_S = 60.0  # how long a starting process waits for PostgreSQL or Redis
STARTUP_RETRY_S = 1.0
WORKER_THREADS = 8  # Dramatiq actor threads per process (`--threads`; Dramatiq's own default)


def revocations(settings: Settings) -> MemoryRevocations | RedisRevocations:
    """The signed-out tokens: shared through Redis where there is one, else this process's."""
    if settings.redis_url:
        return RedisRevocations(settings.redis_url, settings.broker_namespace)
    return MemoryRevocations()


def retry_policy(settings: Settings) -> RetryPolicy:
    """How often, and how far apart, a background step is tried before the order fails."""
    return RetryPolicy(
        budget=settings.fulfillment_attempts,
        base_s=settings.retry_backoff_s,
        cap_s=settings.retry_backoff_max_s,
    )


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """Now, in UTC."""
        return datetime.now(UTC)


class Engine:
    """Everything the entrypoints use, built once per process from the settings and the
    adapters of the outside world (``entrypoints.wiring``). Each part is made by a builder of its
    own, in the order the parts need each other."""

    def __init__(
        self, settings: Settings, clock: Clock, parts: Outside, tracing: Tracing | None = None
    ) -> None:
        self.settings, self.clock, self.tracing = settings, clock, tracing
        self.vault, self.supplier, self.broker = parts.vault, parts.supplier, parts.broker
        self._closers = parts.closers
        self._store()
        orders = Orders(self.store)
        custody = EnvelopeCustody(self.vault, MasterKeys(settings.master_keys))
        self._orders_side(orders, custody, parts)
        self._limits()
        dispatcher = self._actors()
        self._read_side(custody, dispatcher, parts.signer)
        self._background: list[Startable] = []
        self._reader: LogReader | None = None  # this process's, when it runs the followers

    def _store(self) -> None:
        """The event store, its tables made while this process holds the schema lock."""
        with schema_lock(self.settings.postgres_conninfo(), self.settings.database_schema):
            self.store: RecorderEventStore = open_event_store(self.settings.eventsourcing_env())
            self.store.ensure_tables()  # the others too, while this process has the lock

    def _orders_side(self, orders: Orders, custody: EnvelopeCustody, parts: Outside) -> None:
        """The use cases of orders, payments, keys, the catalog and the webhooks."""
        settings, clock = self.settings, self.clock
        self.customers = CustomerData(custody, self.store, clock)
        self.catalog = self._catalog()
        self.refunds = Refunds(orders=orders, supplier=self.supplier, custody=custody, clock=clock)
        self.fulfillment = Fulfillment(
            orders=orders, catalog=self.catalog, customers=self.customers,
            supplier=self.supplier, payments=parts.payments, custody=custody, clock=clock,
            retries=retry_policy(settings),
        )  # fmt: skip
        readers = Readers(nowpayments_api, kinguin_api, self.catalog.refresh)
        self.inbox = WebhookInbox(orders, clock, self.fulfillment.deliver, readers)
        self.ipn_signatures = IpnSignatures(settings.ipn_secrets)
        self.keys = KeyAccess(orders, custody, clock, single_use_links=settings.single_use_links)
        self.links = LinkSigner(settings.jwt_secret.encode(), settings.public_base_url)
        self.notifier = Notifier(orders=orders, keys=self.keys, customers=self.customers,
                                 links=self.links, mailer=parts.mailer, clock=clock)  # fmt: skip

    def _catalog(self) -> Catalog:
        tolerance = Decimal(str(self.settings.supplier_price_tolerance_percent))
        snapshots = ProductSnapshots(self.store.snapshot_recorder())
        return Catalog(self.store, self.supplier, self.clock, tolerance, snapshots)

    def _limits(self) -> None:
        """Rate limits (shared through Redis where there is one) and signed-out tokens."""
        settings = self.settings
        storage, namespace = settings.redis_url or MEMORY, f"{settings.broker_namespace}:limits"
        self.reveal_limit = rate_limiter(settings.reveals_per_minute, storage, namespace)
        self.order_limits = (
            rate_limiter(settings.orders_per_minute, storage, namespace),
            rate_limiter(settings.orders_per_minute_per_ip, storage, namespace),
        )
        self.revocations = revocations(settings)

    def _actors(self) -> DramatiqDispatcher:
        """The actors on the broker, with their metrics (and traces), and what sends to them."""
        self.metrics = CollectorRegistry()  # this engine's, not the process-global one
        self.broker.add_middleware(ActorMetrics(self.metrics))
        if self.tracing is not None:
            self.broker.add_middleware(TraceMessages())
        actors = declare_actors(
            self.broker,
            self.fulfillment.reserve,
            self.fulfillment.deliver,
            self.notifier.order_fulfilled,
            self.fulfillment.give_up,
            refresh_product=self.catalog.refresh,
        )
        dispatcher = DramatiqDispatcher(actors)
        self.process_manager = ProcessManager(dispatcher)
        return dispatcher

    def _read_side(
        self, custody: EnvelopeCustody, dispatcher: DramatiqDispatcher, signer: Signer
    ) -> None:
        """The read models, their projections, the live feed, the evidence and the sweeper."""
        settings = self.settings
        self.views = open_views(settings)
        self.read_models = ReadModels(self.views)
        self.live = (
            LiveUpdates.on_redis(settings.redis_url, settings.broker_namespace)
            if settings.redis_url
            else LiveUpdates.in_memory(settings.broker_namespace)
        )
        self.projections = {
            p.name: ProjectionRunner(
                self.store, self.views, p, wake=self._wake_reader, publish=self.live.publish
            )
            for p in all_projections(custody)
        }
        self.checkpoints = CheckpointTable(self.views)
        self._ensure_read_tables()
        self._evidence_and_sweeper(dispatcher, signer)

    def _ensure_read_tables(self) -> None:
        with schema_lock(self.settings.postgres_conninfo(), self.settings.database_schema):
            for runner in self.projections.values():
                runner.ensure()
            self.checkpoints.ensure()

    def _evidence_and_sweeper(self, dispatcher: DramatiqDispatcher, signer: Signer) -> None:
        settings, clock = self.settings, self.clock
        tree = TreeTable(self.views)
        self.evidence = Evidence(self.store, tree, self.checkpoints, signer, clock)
        self.sweeper = Sweeper(self.read_models, dispatcher, clock, settings.stuck_order_after_s)
        self.metrics.register(EngineGauges(self._readings))
        self._fulfilment_latency = FulfilmentLatency(self.metrics, self.store.load)

    def start(
        self, *, worker: bool = True, followers: bool = True, threads: int = WORKER_THREADS
    ) -> None:
        """Start the background parts this process runs: actor threads, and the log followers
        (process manager, projections, sweeper; one of each across processes)."""
        if worker:
            self._background.append(BackgroundWorker(self.broker, threads))
        if followers:
            self._background.extend(self._followers())
        for part in self._background:
            part.start()

    def stop(self) -> None:
        """Stop background work and release connections."""
        for part in reversed(self._background):
            part.stop()
        self.live.close()
        self.broker.close()
        if isinstance(self.revocations, RedisRevocations):
            self.revocations.close()
        for close in self._closers:
            close()
        self.views.close()
        self.store.close()
        if self.tracing is not None:
            self.tracing.close()

    def _followers(self) -> list[Startable]:
        """The log reader (process manager and projections) and the periodic parts, each one
        per deployment under its lock; on PostgreSQL, the wake-up on every append."""
        manager = LogFollower(
            "process_manager",
            self.store,
            self._fulfilment_latency.after(self.process_manager.handle),
            self.process_manager.topics,
            look_ahead=self.process_manager.look_ahead,
        )
        followers: list[Consumer] = [manager, *self.projections.values()]
        self._reader = LogReader(self.store, followers, lock=self.views.try_lock)
        parts: list[Startable] = [self._reader, *self._periodic()]
        conninfo = self.settings.postgres_conninfo()
        if conninfo is not None:
            # The recorder NOTIFYs on a channel named after its table, whatever the schema.
            parts.append(PostgresWakeUp(conninfo, "bitloot_events", self._reader.wake))
        return parts

    def _periodic(self) -> list[Startable]:
        """The sweeper, the catalog sync, the audit checkpoints and the balance watch: each a
        step polled at its interval (``batch_size`` above what a step does: one per interval)."""
        settings = self.settings
        reconciler = Reconciler(self.catalog, settings.catalog_sync_interval_s)
        balance = BalanceWatch(self.store, self.supplier, self.clock)
        steps: list[tuple[str, Callable[[], int], int, float]] = [
            ("sweeper", self.sweeper.sweep, SWEEP_LIMIT + 1,
             max(1.0, min(settings.stuck_order_after_s / 2, 30.0))),
            ("catalog_sync", reconciler.step, 1, RECONCILE_POLL_S),
            ("audit_checkpoints", self.evidence.checkpoint_step, 2,
             max(1.0, settings.audit_checkpoint_interval_s)),
            ("supplier_balance", balance.step, 2, BALANCE_POLL_S),
        ]  # fmt: skip
        lock = self.views.try_lock
        return [
            BatchLoop(name, step, batch_size=size, poll_interval=every, lock=lock)
            for name, step, size, every in steps
        ]

    def _wake_reader(self) -> None:
        """After a projection command: this process's log reader looks at the log now (one in
        another process sees the command at its runner's next look at its state)."""
        if self._reader is not None:
            self._reader.wake()

    def _readings(self) -> Readings:
        """The gauges' figures, read from the log, the projections and the read models."""
        states = [runner.state() for runner in self.projections.values()]
        latency = self.read_models.fulfilment_latency()
        return Readings(
            head=self.store.head(),
            projections=[
                ProjectionReading(s.name, s.position, s.state == "failed") for s in states
            ],
            orders_by_status=self.read_models.counts_by_status(),
            orders_held=self.read_models.held_orders(),
            fulfilment_latency_median_ms=latency["median"] or 0.0,
        )

    @staticmethod
    def outage(error: BaseException) -> tuple[str, str] | None:
        """When ``error`` is an outage of a service (the database, Redis, the key vault): what
        is unavailable and one line saying so (``adapters.outages``); else None."""
        return outage(error)

    def readiness(self) -> dict[str, str]:
        """Check the store, the broker, the vault and the catalog (``empty`` until the first
        import has finished: every order would be refused); name each one's state."""
        return _probe(
            store=self.store.head,
            broker=self._ping_broker,
            vault=self.vault.ping,
            catalog=self._catalog_imported,
        )

    def worker_health(self) -> dict[str, str]:
        """A worker process's checks (its ``/healthz``): the store and the broker answer, and
        its actor threads run."""
        return _probe(store=self.store.head, broker=self._ping_broker, actors=self._actors_run)

    def _actors_run(self) -> None:
        workers = [part for part in self._background if isinstance(part, BackgroundWorker)]
        if not workers or not all(worker.alive() for worker in workers):
            raise ActorsStopped

    def _catalog_imported(self) -> None:
        if not self.catalog.imported():
            raise CatalogEmpty

    def _ping_broker(self) -> None:
        client = getattr(self.broker, "client", None)
        if client is not None:
            client.ping()


class CatalogEmpty(Exception):
    """The first catalog import has not finished: readiness says ``empty``."""


class ActorsStopped(Exception):
    """This process runs no actor threads, or one of them has died."""


def _probe(**probes: Callable[[], object]) -> dict[str, str]:
    """Each probe's state: ``ok``, ``empty`` (the catalog) or ``failing: <what it raised>``."""
    checks: dict[str, str] = {}
    for name, probe in probes.items():
        try:
            probe()
        except CatalogEmpty:
            checks[name] = "empty"
        except Exception as failure:  # noqa: BLE001 - a health check reports any failure by name
            checks[name] = f"failing: {type(failure).__name__}"
        else:
            checks[name] = "ok"
    return checks


class Startable(Protocol):
    """A background part of the engine."""

    def start(self) -> None:
        """Start it."""
        ...

    def stop(self) -> None:
        """Stop it."""
        ...


def bootstrap(
    settings: Settings,
    *,
    clock: Clock | None = None,
    supplier: Supplier | None = None,
    payments: PaymentGateway | None = None,
    vault: BlobVault | None = None,
    mailer: Mailer | None = None,
    broker: dramatiq.Broker | None = None,
) -> Engine:
    """Build the engine for these settings, with the production adapter of every port unless
    one is handed in (a test's fake). While PostgreSQL or Redis is not there yet (a process
    starting with, or during a restart of, its services), wait for it, one WARNING line a try,
    for up to STARTUP_WAIT_S, then let the outage through."""
    # before anything connects: the instrumentations see the connections made from now on
    tracing = (
        Tracing(settings.otlp_endpoint, settings.service_name) if settings.otlp_endpoint else None
    )
    deadline = time.monotonic() + STARTUP_WAIT_S
    while True:
        parts = outside(settings, supplier=supplier, payments=payments, vault=vault,
                        mailer=mailer, broker=broker)  # fmt: skip
        try:
            return Engine(settings, clock or SystemClock(), parts, tracing)
        except Exception as failure:
            for close in parts.closers:
                close()
            if unavailable(failure) is None or time.monotonic() >= deadline:
                raise
            log_failure(log, failure, "engine start-up", f"retrying in {STARTUP_RETRY_S:g} s")
            time.sleep(STARTUP_RETRY_S)
