"""Live updates: order status changes fanned out to websocket subscribers with Litestar's
channels (``ChannelsPlugin``).

The projection runner publishes each change once, after its transaction commits, from its own
thread. Every change goes to the channel of its order and to the admin channel; projection news
to the admin channel only. Channel names start with the engine's namespace, so engines sharing a
Redis do not hear each other.

- With Redis (``RedisChannelsPubSubBackend``), every API process hears every change and hands it
  to its own sockets. Changes are published from a thread of their own (``RedisPublisher``),
  in any process: the API's, or a ``bitloot worker --followers`` that runs the projections
  with no web app at all. The API's event loop does no publishing work.
- Without Redis, the backend is in memory and only this process's sockets hear.
  ``ChannelsPlugin.publish`` may only be called on the event loop, so ``LiveUpdates.publish``
  hops onto the loop captured when the app started (``call_soon_threadsafe``); before that,
  publishing does nothing.

A Redis outage is logged as one WARNING line: publishing drops changes until Redis is back, the
subscription reconnects each second, and a socket that cannot subscribe meanwhile is refused
with ``LiveUnavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.base import ChannelsBackend
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.channels.backends.redis import RedisChannelsPubSubBackend
from litestar.config.app import AppConfig
from litestar.plugins import InitPlugin
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from adapters.outages import log_failure, unavailable
from application.errors import LiveFeedUnavailable
from application.ports import Message

log = logging.getLogger(__name__)
QUEUE_LIMIT = 1000  # a subscriber (or the outbox) this far behind drops messages
RECONNECT_S = 1.0  # how long the Redis subscription waits after its connection failed
PUBLISH_TIMEOUT_S = 2.0  # a publish to Redis given up after this long (then dropped)

Outbox = asyncio.Queue[tuple[bytes, list[str]]]


class LiveUnavailable(LiveFeedUnavailable):
    """The channels backend (Redis) cannot take a subscription right now."""


class LiveUpdates(InitPlugin):
    """Publishing changes from any thread; subscribing from websocket handlers. Registered as
    a plugin of the app, whose lifespan it follows."""

    def __init__(
        self,
        backend: ChannelsBackend,
        namespace: str,
        redis: Redis | None = None,
        publisher: RedisPublisher | None = None,
    ):
        self.channels = ChannelsPlugin(
            backend, arbitrary_channels_allowed=True, subscriber_max_backlog=QUEUE_LIMIT
        )
        self.admin_channel = f"{namespace}:live:admin"
        self._order_prefix = f"{namespace}:live:order:"
        self._redis = redis
        self._publisher = publisher
        self._running: tuple[asyncio.AbstractEventLoop, Outbox] | None = None
        self._health = _PublishHealth()

    @classmethod
    def in_memory(cls, namespace: str) -> LiveUpdates:
        """The sockets of this process only (the embedded wiring)."""
        return cls(MemoryChannelsBackend(), namespace)

    @classmethod
    def on_redis(cls, url: str, namespace: str) -> LiveUpdates:
        """The sockets of every API process sharing this Redis (connects on first use)."""
        redis = Redis.from_url(url)
        return cls(ResilientRedisBackend(redis=redis), namespace, redis, RedisPublisher(url))

    def order_channel(self, order_id: str) -> str:
        """The channel of one order's changes."""
        return f"{self._order_prefix}{order_id}"

    def publish(self, message: Message) -> None:
        """Hand a change to the subscribers; callable from any thread, returns at once. In
        memory, a no-op while no web app runs in this process."""
        channels = [self.admin_channel]
        if "order_id" in message:
            channels.append(self.order_channel(message["order_id"]))
        item = (json.dumps(message).encode(), channels)
        if self._publisher is not None:
            self._publisher.publish(item)
            return
        running = self._running
        if running is None:
            return
        loop, outbox = running
        with contextlib.suppress(RuntimeError):  # the loop closed since: nobody to tell
            loop.call_soon_threadsafe(_enqueue, outbox, item)

    def close(self) -> None:
        """Stop the Redis publisher, once it has sent what is queued (or given up on it)."""
        if self._publisher is not None:
            self._publisher.close()

    @asynccontextmanager
    async def subscription(self, channel: str) -> AsyncIterator[AsyncIterator[Message]]:
        """The messages of a channel, from now until the block ends (call on the event loop)."""
        try:
            subscriber = await self.channels.subscribe(channel)
        except Exception as failure:
            if unavailable(failure) is None:
                raise
            log_failure(log, failure, "live subscription refused", "the client may retry")
            raise LiveUnavailable(channel) from failure
        try:
            yield (json.loads(data) async for data in subscriber.iter_events())
        finally:
            try:
                await self.channels.unsubscribe(subscriber, channel)
            except Exception as failure:
                if unavailable(failure) is None:
                    raise
                log_failure(log, failure, "live unsubscription failed", "left to Redis")

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Register the channels plugin, then this one's lifespan inside the plugin's (started
        after it, stopped before it); the Redis client is closed last."""
        app_config = self.channels.on_app_init(app_config)
        app_config.lifespan.append(self._serving)
        app_config.on_shutdown.append(self._close)
        return app_config

    @asynccontextmanager
    async def _serving(self, _app: Litestar) -> AsyncGenerator[None, None]:
        outbox: Outbox = asyncio.Queue(QUEUE_LIMIT)
        sender = asyncio.create_task(self._send_forever(outbox))
        self._running = (asyncio.get_running_loop(), outbox)
        try:
            yield
        finally:
            self._running = None
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def _send_forever(self, outbox: Outbox) -> None:
        """Publish in the order of the commits; an outage is logged once, not per change."""
        while True:
            data, channels = await outbox.get()
            try:
                await self.channels.wait_published(data, channels)
            except Exception as failure:  # noqa: BLE001 - logged; live updates are best effort
                self._health.failed(failure)
            else:
                self._health.succeeded()

    async def _close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


class RedisPublisher:
    """Publishes changes to Redis from a thread of its own, in the order they were handed
    over, as Litestar's backend does (``PUBLISH`` per channel). It starts on the first change
    and sends what has queued up in one pipeline; a queue ``QUEUE_LIMIT`` long drops changes
    rather than hold up the projection that publishes them. An outage is one WARNING line,
    and one INFO line when Redis is back."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._queue: queue.SimpleQueue[tuple[bytes, list[str]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._health = _PublishHealth()

    def publish(self, item: tuple[bytes, list[str]]) -> None:
        """Queue one change; returns at once (a no-op once closed)."""
        if self._closed or self._queue.qsize() >= QUEUE_LIMIT:
            return  # closed, or Redis this far behind: drop, do not block
        self._queue.put(item)
        if self._thread is None:
            self._start()

    def close(self) -> None:
        """Stop the thread once it has sent what is queued (waiting at most a publish's
        timeout and a second); later changes are dropped."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=PUBLISH_TIMEOUT_S + 1)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="live-publisher", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        client = SyncRedis.from_url(
            self._url, socket_timeout=PUBLISH_TIMEOUT_S, socket_connect_timeout=PUBLISH_TIMEOUT_S
        )
        try:
            while (batch := self._next_batch()) is not None:
                self._send(client, batch)
        finally:
            client.close()

    def _next_batch(self) -> list[tuple[bytes, list[str]]] | None:
        """What has queued up (at least one change), or None once closed."""
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < QUEUE_LIMIT:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # close after this batch
                break
            batch.append(item)
        return batch

    def _send(self, client: SyncRedis, batch: list[tuple[bytes, list[str]]]) -> None:
        try:
            with client.pipeline(transaction=False) as pipe:
                for data, channels in batch:
                    for channel in channels:
                        pipe.publish(channel, data)
                pipe.execute()
        except Exception as failure:  # noqa: BLE001 - logged; live updates are best effort
            self._health.failed(failure)
        else:
            self._health.succeeded()


class _PublishHealth:
    """Publishing's state for the log: one line when it starts failing (a WARNING for an
    outage), one INFO line when it works again."""

    def __init__(self) -> None:
        self._failing = False

    def failed(self, failure: Exception) -> None:
        if not self._failing:
            then = "subscribers miss changes until it is back"
            log_failure(log, failure, "live update not published", then)
        self._failing = True

    def succeeded(self) -> None:
        if self._failing:
            log.info("live updates published again")
        self._failing = False


def _enqueue(outbox: Outbox, item: tuple[bytes, list[str]]) -> None:
    with contextlib.suppress(asyncio.QueueFull):  # Redis this far behind: drop, do not block
        outbox.put_nowait(item)


class ResilientRedisBackend(RedisChannelsPubSubBackend):
    """Litestar's Redis pub/sub backend, whose stream of events outlives a Redis outage: the
    subscription connection reconnects (and subscribes again) instead of ending the stream.

    Subscribing and unsubscribing take turns. redis-py's ``PubSub`` opens its connection on its
    first command without a lock: two sockets subscribing at once (an owner's and an admin's)
    each opened one, the second replaced the first, and the channel subscribed on the first was
    never read again (seen: one socket heard ``paid`` and nothing after, one run in five).
    """

    def __init__(self, *, redis: Redis) -> None:
        super().__init__(redis=redis)
        self._turns = asyncio.Lock()

    async def subscribe(self, channels: Iterable[str]) -> None:
        """Subscribe to ``channels``, one command at a time."""
        async with self._turns:
            await super().subscribe(channels)

    async def unsubscribe(self, channels: Iterable[str]) -> None:
        """Unsubscribe from ``channels``, one command at a time."""
        async with self._turns:
            await super().unsubscribe(channels)

    async def stream_events(self) -> AsyncGenerator[tuple[str, Any], None]:
        """The events of the subscribed channels, across reconnections."""
        while True:
            try:
                async for event in super().stream_events():
                    yield event
            except Exception as failure:
                if unavailable(failure) is None:
                    raise
                then = f"reconnecting in {RECONNECT_S:g} s"
                log_failure(log, failure, "live subscription to Redis interrupted", then)
                await asyncio.sleep(RECONNECT_S)
