"""Live updates: order status changes fanned out to websocket subscribers.

The projection runner publishes each change once, after its transaction commits. On PostgreSQL
a change travels as a ``NOTIFY`` so that every engine process hears it (each process's
``PostgresLiveBus`` LISTENs and fans out to its own sockets); in the embedded wiring the bus is
in-process. Subscribers are asyncio queues on the web server's loop; publishing is safe from
any thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from adapters.outages import log_failure, unavailable

log = logging.getLogger(__name__)
CHANNEL = "bitloot_live"
QUEUE_LIMIT = 1000  # a subscriber this far behind is dropped rather than slowing everyone
RECONNECT_S = 1.0  # how long the LISTEN thread waits after its connection failed

Message = dict[str, Any]


class Subscription:
    """One subscriber's queue and what it wants to hear."""

    def __init__(self, wants: Callable[[Message], bool]) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Message] = asyncio.Queue(QUEUE_LIMIT)
        self.wants = wants

    def offer(self, message: Message) -> None:
        if self.wants(message):
            self.loop.call_soon_threadsafe(self._put, message)

    def _put(self, message: Message) -> None:
        if not self.queue.full():
            self.queue.put_nowait(message)


class LiveHub:
    """The subscribers of this process."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self._lock = threading.Lock()

    def subscribe(self, wants: Callable[[Message], bool]) -> Subscription:
        """A queue of the messages ``wants`` accepts (call from the event loop)."""
        subscriber = Subscription(wants)
        with self._lock:
            self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscription) -> None:
        """Stop delivering to a queue."""
        with self._lock:
            self._subscribers.discard(subscriber)

    def fan_out(self, message: Message) -> None:
        """Hand a message to every interested subscriber of this process."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber.offer(message)


class InProcessLiveBus:
    """Publishing straight to this process's hub (the embedded wiring)."""

    def __init__(self, hub: LiveHub) -> None:
        self.hub = hub

    def publish(self, message: Message) -> None:
        """Deliver a change to local subscribers."""
        self.hub.fan_out(message)

    def start(self) -> None:
        """Nothing to start."""

    def stop(self) -> None:
        """Nothing to stop."""


class PostgresLiveBus:
    """Publishing with NOTIFY; LISTENing to fan out to this process's hub."""

    def __init__(self, conninfo: str, hub: LiveHub, schema: str | None = None) -> None:
        self.hub = hub
        self._conninfo = conninfo
        # One channel per schema: engines sharing a database do not hear each other.
        self._channel = f"{CHANNEL}_{schema}"[:63] if schema else CHANNEL
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._listen_forever, name="live-listen", daemon=True
        )
        self._publisher: psycopg.Connection[Any] | None = None
        self._publish_lock = threading.Lock()

    def publish(self, message: Message) -> None:
        """NOTIFY every engine process of a change. A publishing connection that a database
        restart cut is replaced and the change sent again once; an outage that lasts raises."""
        notify = sql.SQL("SELECT pg_notify({}, {})").format(
            sql.Literal(self._channel), sql.Literal(json.dumps(message))
        )
        with self._publish_lock:
            try:
                self._publishing_connection().execute(notify)
            except psycopg.OperationalError as failure:
                if unavailable(failure) is None:
                    raise
                self._close_publisher()
                self._publishing_connection().execute(notify)

    def _publishing_connection(self) -> psycopg.Connection[Any]:
        if self._publisher is None or self._publisher.closed:
            self._publisher = psycopg.connect(self._conninfo, autocommit=True)
        return self._publisher

    def _close_publisher(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
            self._publisher = None

    def start(self) -> None:
        """Start listening."""
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and close the publishing connection."""
        self._stopping.set()
        self._thread.join(timeout=5)
        with self._publish_lock:
            self._close_publisher()

    def _listen_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    while not self._stopping.is_set():
                        for notice in conn.notifies(timeout=0.5):
                            self.hub.fan_out(json.loads(notice.payload))
            except Exception as failure:  # noqa: BLE001 - logged; the listener reconnects
                then = f"reconnecting in {RECONNECT_S:g} s"
                log_failure(log, failure, f"live LISTEN on {self._channel} interrupted", then)
                self._stopping.wait(RECONNECT_S)
