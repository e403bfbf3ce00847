"""Dramatiq on real Redis: messages reach the actors, transient failures are retried, an
unknown order is not."""

from __future__ import annotations

import threading
import time
from uuid import UUID, uuid4

from adapters.broker import BackgroundWorker, DramatiqDispatcher, declare_actors, make_broker
from domain.errors import OrderNotFound
from tests.conftest import REDIS_URL


def test_actors_run_on_redis_and_retry_transient_failures(redis_namespace: str) -> None:
    """reserve and deliver arrive; a deliver failing once is retried; an unknown order is not."""
    reserved: list[UUID] = []
    delivered: list[UUID] = []
    attempts: dict[UUID, int] = {}
    done = threading.Event()
    failing, missing = uuid4(), uuid4()

    def reserve(order_id: UUID) -> None:
        reserved.append(order_id)

    def deliver(order_id: UUID) -> None:
        attempts[order_id] = attempts.get(order_id, 0) + 1
        if order_id == missing:
            raise OrderNotFound(str(order_id))
        if order_id == failing and attempts[order_id] == 1:
            raise TimeoutError("supplier slow")
        delivered.append(order_id)
        done.set()

    broker = make_broker(REDIS_URL, namespace=redis_namespace)
    dispatcher = DramatiqDispatcher(declare_actors(broker, reserve, deliver))
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
