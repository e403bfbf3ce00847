"""Dramatiq: the broker (Redis, or an in-process stub broker for the embedded default), the two
actors and the dispatcher that sends them messages.

Actors are declared by ``declare_actors`` on an explicit broker — never on Dramatiq's implicit
global one — so importing this module connects to nothing. They take order ids only and
delegate to the use cases, which decide from the order's current state (idempotent).
Transient failures raise and are retried with exponential backoff and jitter by Dramatiq's
``Retries`` middleware; an unknown order is not retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from uuid import UUID

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from domain.errors import OrderNotFound

log = logging.getLogger(__name__)

QUEUE = "fulfillment"
OrderActor = dramatiq.Actor[[str], None]
MAX_RETRIES = 12
GAVE_UP = "gave_up"


def make_broker(redis_url: str | None, namespace: str = "bitloot") -> dramatiq.Broker:
    """A Redis broker when ``redis_url`` is given, else an in-process stub broker."""
    if redis_url:
        return RedisBroker(url=redis_url, namespace=namespace)  # type: ignore[no-untyped-call]
    broker = StubBroker()
    broker.emit_after("process_boot")
    return broker


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
        broker=broker, actor_name=GAVE_UP, queue_name=QUEUE, throws=(OrderNotFound,)
    )
    declare(gave_up)
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
        max_backoff=60_000,
        on_retry_exhausted=GAVE_UP if give_up else None,
    )
    return declare(fn)


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

    def start(self) -> None:
        """Start consuming."""
        self._worker.start()

    def stop(self) -> None:
        """Finish the messages in hand and stop."""
        self._worker.stop(timeout=10_000)
