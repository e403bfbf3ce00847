"""The composition root: builds every adapter from the settings and wires the use cases.

The HTTP app, the worker and the CLI all start here; nothing connects anywhere before
``bootstrap`` is called.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import httpx

from adapters.broker import (
    BackgroundWorker,
    DramatiqDispatcher,
    declare_actors,
    make_broker,
)
from adapters.crypto import MasterKeys
from adapters.custody import EnvelopeCustody
from adapters.eventstore import RecorderEventStore, open_event_store
from adapters.kinguin import KinguinClient
from adapters.log_follower import LogFollower, PostgresWakeUp
from adapters.nowpayments import NowPaymentsClient
from adapters.vault import BlobVault, FileVault
from application.fulfillment import Fulfillment
from application.ports import Clock
from application.process_manager import ProcessManager
from entrypoints.settings import Settings

log = logging.getLogger(__name__)
HTTP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """Now, in UTC."""
        return datetime.now(UTC)


class Engine:
    """Everything the entrypoints use, built once per process."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.store: RecorderEventStore = open_event_store(settings.eventsourcing_env())
        self.vault: BlobVault = FileVault(settings.var_dir / "vault")
        self._kinguin_http = httpx.Client(
            base_url=settings.kinguin_url,
            headers={"X-Api-Key": settings.kinguin_api_key},
            timeout=HTTP_TIMEOUT,
        )
        self._nowpayments_http = httpx.Client(
            base_url=settings.nowpayments_url,
            headers={"x-api-key": settings.nowpayments_api_key},
            timeout=HTTP_TIMEOUT,
        )
        self.fulfillment = Fulfillment(
            store=self.store,
            supplier=KinguinClient(self._kinguin_http),
            payments=NowPaymentsClient(
                self._nowpayments_http, f"{settings.public_base_url}/webhooks/nowpayments/ipn"
            ),
            custody=EnvelopeCustody(self.vault, MasterKeys(settings.master_keys)),
            clock=clock,
        )
        self.broker = make_broker(settings.redis_url)
        actors = declare_actors(
            self.broker,
            self.fulfillment.reserve,
            self.fulfillment.deliver,
            self.fulfillment.give_up,
        )
        self.process_manager = ProcessManager(DramatiqDispatcher(actors))
        self._worker: BackgroundWorker | None = None
        self._followers: list[LogFollower] = []
        self._wake_up: PostgresWakeUp | None = None

    def start(self, *, worker: bool = True, process_manager: bool = True) -> None:
        """Start the background parts this process runs."""
        if worker:
            self._worker = BackgroundWorker(self.broker)
            self._worker.start()
        if process_manager:
            follower = LogFollower(
                "process_manager",
                self.store,
                self.process_manager.handle,
                self.process_manager.topics,
            )
            follower.start()
            self._followers.append(follower)
        self._listen_for_appends()

    def stop(self) -> None:
        """Stop background work and release connections."""
        for follower in self._followers:
            follower.stop()
        if self._wake_up is not None:
            self._wake_up.stop()
        if self._worker is not None:
            self._worker.stop()
        self.broker.close()
        self._kinguin_http.close()
        self._nowpayments_http.close()
        self.store.close()

    def readiness(self) -> dict[str, str]:
        """Check the store, the broker and the vault; name each one's state."""
        checks: dict[str, str] = {}
        for name, probe in (
            ("store", self.store.head),
            ("broker", self._ping_broker),
            ("vault", self.vault.ping),
        ):
            try:
                probe()
            except Exception as failure:  # noqa: BLE001 - readiness reports any failure by name
                checks[name] = f"failing: {type(failure).__name__}"
            else:
                checks[name] = "ok"
        return checks

    def _ping_broker(self) -> None:
        client = getattr(self.broker, "client", None)
        if client is not None:
            client.ping()

    def _listen_for_appends(self) -> None:
        conninfo = self.settings.postgres_conninfo()
        if conninfo is None or not self._followers:
            return

        def wake_all() -> None:
            for follower in self._followers:
                follower.wake()

        # The recorder NOTIFYs on a channel named after its table, whatever the schema.
        self._wake_up = PostgresWakeUp(conninfo, "bitloot_events", wake_all)
        self._wake_up.start()


def bootstrap(settings: Settings, clock: Clock | None = None) -> Engine:
    """Build the engine for these settings."""
    return Engine(settings, clock or SystemClock())
