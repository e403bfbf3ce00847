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

import httpx
from prometheus_client import CollectorRegistry

from adapters import kinguin as kinguin_api
from adapters import nowpayments as nowpayments_api
from adapters.batch_loop import BatchLoop
from adapters.broker import (
    BackgroundWorker,
    DramatiqDispatcher,
    declare_actors,
    make_broker,
)
from adapters.checkpoints import CheckpointTable
from adapters.crypto import MasterKeys
from adapters.custody import EnvelopeCustody
from adapters.eventstore import RecorderEventStore, open_event_store
from adapters.kinguin import KinguinClient
from adapters.links import LinkSigner
from adapters.live import LiveUpdates
from adapters.log_follower import LogFollower, PostgresWakeUp
from adapters.log_reader import LogReader
from adapters.mail import OutboxMailer, ResendMailer
from adapters.metrics import (
    ActorMetrics,
    EngineGauges,
    FulfilmentLatency,
    ProjectionReading,
    Readings,
)
from adapters.nowpayments import NowPaymentsClient
from adapters.nowpayments_signature import IpnSignatures
from adapters.outages import log_failure, outage, unavailable
from adapters.rate_limit import MEMORY, rate_limiter
from adapters.revocations import MemoryRevocations, RedisRevocations
from adapters.s3_vault import S3Vault
from adapters.signing import Ed25519Signer
from adapters.snapshots import ProductSnapshots
from adapters.tracing import TraceMessages, Tracing
from adapters.vault import FileVault
from adapters.views import PostgresViews, SQLiteViews, ViewDatabase, schema_lock
from application.balance import BalanceWatch
from application.catalog import Catalog, Reconciler
from application.customers import CustomerData
from application.evidence import Evidence
from application.fulfillment import Fulfillment, RetryPolicy
from application.key_access import KeyAccess
from application.notifications import Notifier
from application.orders import Orders
from application.ports import Clock
from application.process_manager import ProcessManager
from application.refunds import Refunds
from application.sweeper import Sweeper
from application.webhooks import Readers, WebhookInbox
from entrypoints.http.auth import Tokens
from entrypoints.settings import Settings
from projections.catalog import all_projections
from projections.merkle import TreeTable
from projections.queries import STUCK_LIMIT as SWEEP_LIMIT
from projections.queries import ReadModels
from projections.runner import ProjectionRunner

log = logging.getLogger(__name__)
HTTP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# An idle pooled connection is closed after 2 s: under a server's keep-alive timeout (uvicorn's,
# the sandboxes', is 5 s, the same as httpx's own default), so that a request is never sent on
# a connection the server is closing at that moment (it fails with "connection reset").
HTTP_LIMITS = httpx.Limits(keepalive_expiry=2.0)
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


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """Now, in UTC."""
        return datetime.now(UTC)


class Engine:
    """Everything the entrypoints use, built once per process."""

    def __init__(self, settings: Settings, clock: Clock, tracing: Tracing | None = None) -> None:
        self.settings, self.clock, self.tracing = settings, clock, tracing
        with schema_lock(settings.postgres_conninfo(), settings.database_schema):
            self.store: RecorderEventStore = open_event_store(settings.eventsourcing_env())
            self.store.ensure_tables()  # the others too, while this process has the lock
        self.vault = open_vault(settings)
        self._kinguin_http = httpx.Client(
            base_url=settings.kinguin_url,
            headers={"X-Api-Key": settings.kinguin_api_key},
            timeout=HTTP_TIMEOUT,
            limits=HTTP_LIMITS,
        )
        self._nowpayments_http = httpx.Client(
            base_url=settings.nowpayments_url,
            headers={"x-api-key": settings.nowpayments_api_key},
            timeout=HTTP_TIMEOUT,
            limits=HTTP_LIMITS,
        )
        orders = Orders(self.store)
        custody = EnvelopeCustody(self.vault, MasterKeys(settings.master_keys))
        self.supplier = supplier = KinguinClient(self._kinguin_http)
        self.customers = CustomerData(custody, self.store, clock)
        tolerance = Decimal(str(settings.supplier_price_tolerance_percent))
        self.catalog = Catalog(
            self.store, supplier, clock, tolerance, ProductSnapshots(self.store.snapshot_recorder())
        )
        self.refunds = Refunds(orders=orders, supplier=supplier, custody=custody, clock=clock)
        self.fulfillment = Fulfillment(
            orders=orders,
            catalog=self.catalog,
            customers=self.customers,
            supplier=supplier,
            payments=NowPaymentsClient(
                self._nowpayments_http, f"{settings.public_base_url}/webhooks/nowpayments/ipn"
            ),
            custody=custody,
            clock=clock,
            retries=RetryPolicy(
                budget=settings.fulfillment_attempts,
                base_s=settings.retry_backoff_s,
                cap_s=settings.retry_backoff_max_s,
            ),
        )
        self.inbox = WebhookInbox(
            orders,
            clock,
            self.fulfillment.deliver,
            Readers(nowpayments_api, kinguin_api, self.catalog.refresh),
        )
        self.ipn_signatures = IpnSignatures(settings.ipn_secrets)
        self.keys = KeyAccess(orders, custody, clock, single_use_links=settings.single_use_links)
        self.links = LinkSigner(settings.jwt_secret.encode(), settings.public_base_url)
        self._mail_http: httpx.Client | None = None
        self.notifier = Notifier(
            orders=orders,
            keys=self.keys,
            customers=self.customers,
            links=self.links,
            mailer=self._mailer(),
            clock=clock,
        )
        limits_storage = settings.redis_url or MEMORY
        namespace = f"{settings.broker_namespace}:limits"
        self.reveal_limit = rate_limiter(settings.reveals_per_minute, limits_storage, namespace)
        self.order_limits = (
            rate_limiter(settings.orders_per_minute, limits_storage, namespace),
            rate_limiter(settings.orders_per_minute_per_ip, limits_storage, namespace),
        )
        self._revocations = revocations(settings)
        self.tokens = Tokens(
            settings.jwt_secret,
            self._revocations,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
        self.metrics = CollectorRegistry()  # this engine's, not the process-global one
        self.broker = make_broker(settings.redis_url, settings.broker_namespace)
        self.broker.add_middleware(ActorMetrics(self.metrics))
        if tracing is not None:
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
        self.views = open_views(settings)
        self.read_models = ReadModels(self.views)
        self.live = (
            LiveUpdates.on_redis(settings.redis_url, settings.broker_namespace)
            if settings.redis_url
            else LiveUpdates.in_memory(settings.broker_namespace)
        )
        conninfo = settings.postgres_conninfo()
        self.projections = {
            p.name: ProjectionRunner(
                self.store, self.views, p, wake=self._wake_reader, publish=self.live.publish
            )
            for p in all_projections(custody)
        }
        self.checkpoints = CheckpointTable(self.views)
        with schema_lock(conninfo, settings.database_schema):
            for runner in self.projections.values():
                runner.ensure()
            self.checkpoints.ensure()
        self.evidence = Evidence(
            self.store,
            TreeTable(self.views),
            self.checkpoints,
            Ed25519Signer.from_text(settings.audit_signing_key),
            clock,
        )
        self.sweeper = Sweeper(self.read_models, dispatcher, clock, settings.stuck_order_after_s)
        self.metrics.register(EngineGauges(self._readings))
        self._fulfilment_latency = FulfilmentLatency(self.metrics, self.store.load)
        self._background: list[Startable] = []
        self._reader: LogReader | None = None  # this process's, when it runs the followers

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
        if isinstance(self._revocations, RedisRevocations):
            self._revocations.close()
        self._kinguin_http.close()
        if self._mail_http is not None:
            self._mail_http.close()
        self._nowpayments_http.close()
        self.views.close()
        if isinstance(self.vault, S3Vault):
            self.vault.close()
        self.store.close()
        if self.tracing is not None:
            self.tracing.close()

    def _mailer(self) -> ResendMailer | OutboxMailer:
        if self.settings.resend_api_key:
            self._mail_http = httpx.Client(
                base_url=self.settings.resend_base_url,
                headers={"Authorization": f"Bearer {self.settings.resend_api_key}"},
                timeout=HTTP_TIMEOUT,
                limits=HTTP_LIMITS,
            )
            return ResendMailer(self._mail_http, self.settings.email_from)
        return OutboxMailer(self.settings.var_dir / "outbox", self.settings.email_from)

    def _followers(self) -> list[Startable]:
        lock = self.views.try_lock
        manager = LogFollower(
            "process_manager",
            self.store,
            self._fulfilment_latency.after(self.process_manager.handle),
            self.process_manager.topics,
            look_ahead=self.process_manager.look_ahead,
        )
        self._reader = LogReader(self.store, [manager, *self.projections.values()], lock=lock)
        sweep_every = max(1.0, min(self.settings.stuck_order_after_s / 2, 30.0))
        sweeper = BatchLoop(
            "sweeper",
            self.sweeper.sweep,
            batch_size=SWEEP_LIMIT + 1,  # never "full": one round per interval
            poll_interval=sweep_every,
            lock=lock,
        )
        reconciler = Reconciler(self.catalog, self.settings.catalog_sync_interval_s)
        catalog_sync = BatchLoop(
            "catalog_sync", reconciler.step, batch_size=1, poll_interval=RECONCILE_POLL_S, lock=lock
        )
        checkpointer = BatchLoop(
            "audit_checkpoints",
            self.evidence.checkpoint_step,
            batch_size=2,  # never "full": one checkpoint per interval at most
            poll_interval=max(1.0, self.settings.audit_checkpoint_interval_s),
            lock=lock,
        )
        balance = BatchLoop(
            "supplier_balance",
            BalanceWatch(self.store, self.supplier, self.clock).step,
            batch_size=2,  # never "full": one look per interval
            poll_interval=BALANCE_POLL_S,
            lock=lock,
        )
        parts: list[Startable] = [self._reader, sweeper, catalog_sync, checkpointer, balance]
        conninfo = self.settings.postgres_conninfo()
        if conninfo is not None:
            # The recorder NOTIFYs on a channel named after its table, whatever the schema.
            parts.append(PostgresWakeUp(conninfo, "bitloot_events", self._reader.wake))
        return parts

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


def open_vault(settings: Settings) -> FileVault | S3Vault:
    """The S3 vault when R2_* are set, else encrypted files under the var folder."""
    if not settings.uses_s3:
        return FileVault(settings.var_dir / "vault")
    vault = S3Vault(
        endpoint=settings.r2_endpoint or "",
        bucket=settings.r2_bucket or "",
        access_key_id=settings.r2_access_key_id or "",
        secret_access_key=settings.r2_secret_access_key or "",
    )
    vault.ensure_bucket()
    return vault


def open_views(settings: Settings) -> ViewDatabase:
    """The read-model database beside the event store."""
    conninfo = settings.postgres_conninfo()
    if conninfo is None:
        return SQLiteViews(settings.var_dir / "views.db")
    return PostgresViews(conninfo, settings.database_schema)


def bootstrap(settings: Settings, clock: Clock | None = None) -> Engine:
    """Build the engine for these settings; while PostgreSQL or Redis is not there yet (a
    process starting with, or during a restart of, its services), wait for it, one WARNING line
    a try, for up to STARTUP_WAIT_S, then let the outage through."""
    # before anything connects: the instrumentations see the connections made from now on
    tracing = (
        Tracing(settings.otlp_endpoint, settings.service_name) if settings.otlp_endpoint else None
    )
    deadline = time.monotonic() + STARTUP_WAIT_S
    while True:
        try:
            return Engine(settings, clock or SystemClock(), tracing)
        except Exception as failure:
            if unavailable(failure) is None or time.monotonic() >= deadline:
                raise
            log_failure(log, failure, "engine start-up", f"retrying in {STARTUP_RETRY_S:g} s")
            time.sleep(STARTUP_RETRY_S)
