"""Dramatiq: the broker (Redis, or an in-process stub broker for the embedded default), the two
actors and the dispatcher that sends them messages.

Actors are declared by ``declare_actors`` on an explicit broker — never on Dramatiq's implicit
global one — so importing this module connects to nothing. They take order ids only and
delegate to the use cases, which decide from the order's current state (idempotent).
Transient failures raise and are retried with exponential backoff and jitter by Dramatiq's
``Retries`` middleware; an unknown order is not retried.

An outage of the database or Redis (``adapters.outages``) is expected: an actor it fails logs
one WARNING line — step, order, retry and when — and is retried on the same backoff, without
Dramatiq's traceback; Redis going away under the broker is a connection error to Dramatiq (one
line from its consumer), and a retry that cannot be queued is one WARNING line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import dramatiq
import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import compute_backoff
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message
from dramatiq.middleware import CurrentMessage, Retries, default_middleware
from dramatiq.middleware.retries import DEFAULT_MAX_BACKOFF, DEFAULT_MIN_BACKOFF

from adapters.outages import OutagesAsWarnings, one_line, outage_text, unavailable
from domain.errors import OrderNotFound

log = logging.getLogger(__name__)

QUEUE = "fulfillment"
OrderActor = dramatiq.Actor[[str], None]
MAX_RETRIES = 12
MAX_BACKOFF_MS = 60_000
GAVE_UP = "gave_up"
GAVE_UP_RETRIES = 20  # Dramatiq's default
# How long one run of an actor may take before Dramatiq interrupts it (and retries it): a run
# makes a few supplier or vault calls of at most 10 s each; recording a give-up is one save.
TIME_LIMIT_MS = {
    "reserve": 120_000,
    "deliver": 120_000,
    "notify": 60_000,
    "refresh_product": 60_000,
}
GAVE_UP_TIME_LIMIT_MS = 30_000
WAKE_TOKENS = 64  # a queue's wake list is kept this short: a token only means "fetch now"
FULL_PREFETCH_WAIT_S = 0.005


def make_broker(redis_url: str | None, namespace: str = "bitloot") -> dramatiq.Broker:
    """A Redis broker when ``redis_url`` is given, else an in-process stub broker."""
    middleware = [
        *(_OutageTolerantRetries() if m is Retries else m() for m in default_middleware),
        CurrentMessage(),  # the actors' outage handling reads the message's retry count
    ]
    if redis_url:
        return _RedisBroker(  # type: ignore[no-untyped-call]
            url=redis_url, namespace=namespace, middleware=middleware
        )
    return StubBroker(middleware=middleware)


class _RedisBroker(RedisBroker):
    """Dramatiq's Redis broker, whose consumers are woken by a new message instead of polling
    (``_WokenConsumer``), and whose ``enqueue`` reports Redis unreachable as Dramatiq's own
    connection error, like its consumers do (the worker then logs one line, not a traceback)."""

    @property
    def consumer_class(self) -> type[_WokenConsumer]:
        return _WokenConsumer

    def wake_key(self, queue_name: str) -> str:
        """The Redis list a message sent to ``queue_name`` pushes a token onto."""
        return f"{self.namespace}:{queue_name}.wake"

    def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
        try:
            sent = super().enqueue(message, delay=delay)
            if delay is None:
                wake = self.wake_key(message.queue_name)
                tokens = self.client.pipeline(transaction=False)
                tokens.lpush(wake, b"1")
                tokens.ltrim(wake, 0, WAKE_TOKENS - 1)
                tokens.execute()
        except (redis.ConnectionError, redis.TimeoutError) as failure:
            raise ConnectionClosed(str(failure)) from failure  # type: ignore[no-untyped-call]
        return sent


class _WokenConsumer(_RedisConsumer):
    """Dramatiq's Redis consumer, except when the queue is empty: Dramatiq's sleeps between
    polls, longer and longer up to the worker's timeout (so a message sent to an idle worker
    waited up to a quarter of a second here, at each step of an order); this one waits on the
    queue's wake list (``BRPOP``) for at most that timeout, and fetches as soon as a message
    is sent. Every other part (fetch, ack, nack, requeue) is Dramatiq's."""

    def __init__(self, broker: _RedisBroker, queue_name: str, prefetch: int, timeout: int):
        super().__init__(broker, queue_name, prefetch, timeout)  # type: ignore[no-untyped-call]
        self._wake = broker.wake_key(queue_name)
        self._wait_s = timeout / 1000

    def __next__(self) -> MessageProxy | None:
        try:
            if not self.message_cache and self.outstanding_message_count < self.prefetch:
                room = self.prefetch - self.outstanding_message_count
                self.message_cache = self.broker.do_fetch(self.queue_name, room)
                if not self.message_cache:
                    self.broker.client.brpop([self._wake], timeout=self._wait_s)
                    return None
            if not self.message_cache:
                time.sleep(FULL_PREFETCH_WAIT_S)  # every fetched message is being worked on
                return None
            message = Message.decode(self.message_cache.pop(0))
        except redis.ConnectionError as failure:
            raise ConnectionClosed(failure) from None  # type: ignore[no-untyped-call]
        self.queued_message_ids.add(message.message_id)
        return MessageProxy(message)


class _OutageTolerantRetries(Retries):
    """Dramatiq's ``Retries``; a retry that cannot be queued because Redis is unreachable is one
    WARNING line (the sweeper sends stuck orders' work again) instead of a traceback."""

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        try:
            super().after_process_message(  # type: ignore[no-untyped-call]
                broker, message, result=result, exception=exception
            )
        except Exception as failure:
            if unavailable(failure) is None:
                raise
            log.warning(
                "%s of %s: retry not queued, %s; left to the sweeper",
                message.actor_name,
                _subject_of(tuple(message.args)),
                outage_text(failure),
            )


class Actors:
    """The background actors, bound to one broker."""

    def __init__(
        self, reserve: OrderActor, deliver: OrderActor, notify: OrderActor, refresh: OrderActor
    ) -> None:
        self.reserve = reserve
        self.deliver = deliver
        self.notify = notify
        self.refresh = refresh


def declare_actors(
    broker: dramatiq.Broker,
    reserve: Callable[[UUID], None],
    deliver: Callable[[UUID], None],
    notify: Callable[[UUID], None],
    give_up: Callable[[UUID, str], None],
    *,
    refresh_product: Callable[[str], None],
    max_retries: int = MAX_RETRIES,
    min_backoff_ms: int = 250,
) -> Actors:
    """Declare ``reserve``, ``deliver``, ``notify`` and ``refresh_product`` on ``broker``,
    delegating to the given use cases; when reserve or deliver exhausts its retries,
    ``give_up`` records why."""

    def reserve_order(order_id: str) -> None:
        reserve(UUID(order_id))

    def deliver_order(order_id: str) -> None:
        deliver(UUID(order_id))

    def notify_customer(order_id: str) -> None:
        notify(UUID(order_id))

    def gave_up(message: dict[str, Any], retry_info: dict[str, Any]) -> None:
        order_id = UUID(message["args"][0])
        give_up(order_id, f"{message['actor_name']} gave up after {retry_info['retries']} retries")

    declare = dramatiq.actor(
        broker=broker,
        actor_name=GAVE_UP,
        queue_name=QUEUE,
        throws=(OrderNotFound,),
        # Dramatiq's defaults, spelled out: recording the failure may wait a long outage out
        max_retries=GAVE_UP_RETRIES,
        min_backoff=DEFAULT_MIN_BACKOFF,
        max_backoff=DEFAULT_MAX_BACKOFF,
        time_limit=GAVE_UP_TIME_LIMIT_MS,
    )
    declare(
        _outages_retried(
            GAVE_UP, "order", gave_up, max_retries=GAVE_UP_RETRIES,
            min_backoff_ms=DEFAULT_MIN_BACKOFF, max_backoff_ms=DEFAULT_MAX_BACKOFF,
        )
    )  # fmt: skip
    return Actors(
        reserve=_actor(broker, "reserve", reserve_order, max_retries, min_backoff_ms),
        deliver=_actor(broker, "deliver", deliver_order, max_retries, min_backoff_ms),
        notify=_actor(
            broker, "notify", notify_customer, max_retries, min_backoff_ms, give_up=False
        ),
        refresh=_actor(
            broker, "refresh_product", refresh_product, max_retries, min_backoff_ms, give_up=False
        ),
    )


def _actor(
    broker: dramatiq.Broker,
    name: str,
    fn: Callable[[str], None],
    max_retries: int,
    min_backoff_ms: int,
    *,
    give_up: bool = True,
) -> OrderActor:
    declare = dramatiq.actor(
        broker=broker,
        actor_name=name,
        queue_name=QUEUE,
        throws=(OrderNotFound,),
        max_retries=max_retries,
        min_backoff=min_backoff_ms,  # doubles per retry, with jitter
        max_backoff=MAX_BACKOFF_MS,
        time_limit=TIME_LIMIT_MS[name],
        on_retry_exhausted=GAVE_UP if give_up else None,
    )
    subject = "product" if name == "refresh_product" else "order"
    backoff = {"min_backoff_ms": min_backoff_ms, "max_backoff_ms": MAX_BACKOFF_MS}
    return declare(_outages_retried(name, subject, fn, max_retries=max_retries, **backoff))


def _outages_retried(
    name: str,
    subject: str,
    fn: Callable[..., None],
    *,
    max_retries: int,
    min_backoff_ms: int,
    max_backoff_ms: int,
) -> Callable[..., None]:
    """``fn``, with an outage of the database or Redis logged as one WARNING line and raised
    as Dramatiq's ``Retry`` (which Dramatiq does not log) with the backoff ``Retries`` would
    have used; the retries count as before, and ``gave_up`` follows the last one. Any other
    exception propagates as it is, traceback and all."""

    def run(*args: Any) -> None:
        try:
            fn(*args)
        except Exception as failure:
            if unavailable(failure) is None:
                raise
            message = CurrentMessage.get_current_message()
            retries: int = message.options.get("retries", 0) if message is not None else 0
            about = f"{name} of {subject} {_subject_of(args)}"
            if retries >= max_retries:
                log.warning(
                    "%s: %s; %d retries spent, giving up", about, outage_text(failure), retries
                )
                raise dramatiq.Retry(one_line(failure)) from failure
            _, delay_ms = compute_backoff(
                retries, factor=min_backoff_ms, max_backoff=max_backoff_ms
            )
            log.warning(
                "%s: %s; retry %d of %d in %.1f s",
                about, outage_text(failure), retries + 1, max_retries, delay_ms / 1000,
            )  # fmt: skip
            raise dramatiq.Retry(one_line(failure), delay=delay_ms) from failure

    return run


def _subject_of(args: tuple[Any, ...]) -> str:
    """The order (or product) a message is about: its first argument, or for ``gave_up`` the
    first argument of the message that gave up."""
    first = args[0] if args else "?"
    if isinstance(first, dict):
        return str(first.get("args", ["?"])[0])
    return str(first)


class DramatiqDispatcher:
    """Implements ``application.ports.Dispatcher`` by sending actor messages."""

    def __init__(self, actors: Actors) -> None:
        self._actors = actors

    def reserve(self, order_id: UUID, delay_s: float = 0.0) -> None:
        """Queue a ``reserve`` for the order (delivered after ``delay_s``)."""
        _send(self._actors.reserve, str(order_id), delay_s)

    def deliver(self, order_id: UUID, delay_s: float = 0.0) -> None:
        """Queue a ``deliver`` for the order (delivered after ``delay_s``)."""
        _send(self._actors.deliver, str(order_id), delay_s)

    def notify(self, order_id: UUID) -> None:
        """Queue a ``notify`` for the order."""
        self._actors.notify.send(str(order_id))

    def refresh_product(self, product_id: str) -> None:
        """Queue a ``refresh_product`` for a Kinguin product."""
        self._actors.refresh.send(product_id)


def _send(actor: OrderActor, argument: str, delay_s: float) -> None:
    if delay_s > 0:
        actor.send_with_options(args=(argument,), delay=int(delay_s * 1000))
    else:
        actor.send(argument)


class BackgroundWorker:
    """A Dramatiq worker running actor threads inside this process."""

    def __init__(self, broker: dramatiq.Broker, threads: int = 4) -> None:
        self._worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=250)
        # Dramatiq's consumers log Redis going away as CRITICAL: an outage is a WARNING here.
        for queue in (*broker.get_declared_queues(), *broker.get_declared_delay_queues()):
            consumer = logging.getLogger(f"dramatiq.worker.ConsumerThread({queue})")
            if not any(isinstance(f, OutagesAsWarnings) for f in consumer.filters):
                consumer.addFilter(OutagesAsWarnings())

    def start(self) -> None:
        """Boot the broker's middleware (as Dramatiq's own command does: the time limits are
        enforced from then on), then start consuming."""
        self._worker.broker.emit_after("process_boot")
        self._worker.start()

    def stop(self) -> None:
        """Finish the messages in hand and stop."""
        self._worker.stop(timeout=10_000)

    def alive(self) -> bool:
        """Whether every consumer thread and every actor thread of this worker still runs."""
        threads = [*self._worker.consumers.values(), *self._worker.workers]
        return bool(threads) and all(thread.is_alive() for thread in threads)
