"""Dramatiq on real Redis: messages reach the actors, transient failures are retried, an
unknown order is not."""

from __future__ import annotations

import threading
import time
from uuid import UUID, uuid4

import dramatiq
import pytest
import redis

from adapters import broker as broker_module
from adapters.broker import BackgroundWorker, DramatiqDispatcher, declare_actors, make_broker
from domain.errors import OrderNotFound
from tests.conftest import REDIS_URL


def test_actors_run_on_redis_and_retry_transient_failures(redis_namespace: str) -> None:
    """reserve and deliver arrive; a deliver failing once is retried; an unknown order is not."""
    reserved: list[UUID] = []
    delivered: list[UUID] = []
    gave_up: list[tuple[UUID, str]] = []
    attempts: dict[UUID, int] = {}
    done = threading.Event()
    failing, missing = uuid4(), uuid4()

    def reserve(order_id: UUID) -> None:
        reserved.append(order_id)

    def give_up(order_id: UUID, reason: str) -> None:
        gave_up.append((order_id, reason))

    def deliver(order_id: UUID) -> None:
        attempts[order_id] = attempts.get(order_id, 0) + 1
        if order_id == missing:
            raise OrderNotFound(str(order_id))
        if order_id == failing and attempts[order_id] == 1:
            raise TimeoutError("supplier slow")
        delivered.append(order_id)
        done.set()

    broker = make_broker(REDIS_URL, namespace=redis_namespace)
    actors = declare_actors(broker, reserve, deliver, deliver, give_up, refresh_product=print)
    dispatcher = DramatiqDispatcher(actors)
    worker = BackgroundWorker(broker, threads=2)
    worker.start()
    try:
        order = uuid4()
        dispatcher.reserve(order)
        dispatcher.deliver(missing)
        dispatcher.deliver(failing)
        assert done.wait(10)
        deadline = time.monotonic() + 5
        while not reserved and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reserved == [order]
        assert delivered == [failing]
        assert attempts[failing] == 2
        time.sleep(1.0)  # a retried OrderNotFound would have come back by now
        assert attempts[missing] == 1
    finally:
        worker.stop()
        broker.close()


def test_exhausted_retries_are_recorded_not_dropped(redis_namespace: str) -> None:
    """An actor failing past its retries hands the order and the reason to give-up."""
    gave_up: list[tuple[UUID, str]] = []
    done = threading.Event()

    def always_fails(order_id: UUID) -> None:
        raise TimeoutError("supplier down")

    def give_up(order_id: UUID, reason: str) -> None:
        gave_up.append((order_id, reason))
        done.set()

    broker = make_broker(REDIS_URL, namespace=redis_namespace)
    actors = declare_actors(
        broker,
        always_fails,
        always_fails,
        always_fails,
        give_up,
        refresh_product=print,
        max_retries=2,
        min_backoff_ms=10,
    )
    worker = BackgroundWorker(broker, threads=2)
    worker.start()
    try:
        order = uuid4()
        DramatiqDispatcher(actors).reserve(order)
        assert done.wait(15)
        assert gave_up == [(order, "reserve gave up after 2 retries")]
    finally:
        worker.stop()
        broker.close()


def test_a_run_over_its_time_limit_is_interrupted_and_retried(
    redis_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deliver stuck in a call is stopped at its actor's time limit and tried again."""
    monkeypatch.setitem(broker_module.TIME_LIMIT_MS, "deliver", 300)
    runs: list[str] = []
    done = threading.Event()

    def deliver(_order_id: UUID) -> None:
        runs.append("started")
        if len(runs) == 1:
            for _ in range(100):  # a call that hangs (in steps, so the interrupt can land)
                time.sleep(0.05)
            runs.append("ran to the end")
        done.set()

    broker = make_broker(REDIS_URL, namespace=redis_namespace)
    actors = declare_actors(broker, print, deliver, print, print, refresh_product=print)
    assert all(broker.get_actor(name).options.get("time_limit") for name in broker.actors)
    worker = BackgroundWorker(broker, threads=1)
    worker.start()
    try:
        DramatiqDispatcher(actors).deliver(uuid4())
        assert done.wait(10)
        assert runs == ["started", "started"]
    finally:
        worker.stop()
        broker.close()


def test_an_idle_consumer_is_woken_by_a_new_message(redis_namespace: str) -> None:
    """An empty queue's consumer waits on the queue's wake list, not on a growing sleep: a
    message sent meanwhile ends the wait at once (well before the consumer's timeout), and the
    next call hands it over. The wake list stays short however many messages are sent."""
    broker = make_broker(REDIS_URL, namespace=redis_namespace)
    broker.declare_queue("q")
    consumer = broker.consume("q", prefetch=1, timeout=30_000)
    message: dramatiq.Message[None] = dramatiq.Message(
        queue_name="q", actor_name="a", args=(), kwargs={}, options={}
    )
    threading.Timer(0.3, broker.enqueue, (message,)).start()
    started = time.monotonic()
    assert next(consumer) is None  # woken: the wait ended without a message in hand
    assert time.monotonic() - started < 20
    received = next(consumer)
    assert received is not None
    assert received.message_id == message.message_id
    consumer.ack(received)
    for _ in range(100):
        broker.enqueue(message.copy())
    wake_list = redis.Redis.from_url(REDIS_URL).llen(f"{redis_namespace}:q.wake")
    assert wake_list == broker_module.WAKE_TOKENS
    consumer.close()
    broker.close()
