"""The sandboxes' webhooks leave from a bounded queue through a few senders, over real HTTP: a
backlog never puts more than ``senders`` requests in flight, and a shutdown with webhooks still
queued fails them at once rather than leaving their senders waiting."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator

import pytest
from litestar import Litestar, post

from sandboxes.callbacks import Callbacks, CallbacksClosed
from tests.support import serving


class Receiver:
    """A slow webhook receiver that counts the requests it is serving at once."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.in_flight = 0
        self.most_in_flight = 0
        self.received = 0
        self._lock = threading.Lock()

    def app(self) -> Litestar:
        @post("/hook", status_code=204)
        async def hook() -> None:
            with self._lock:
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
            await asyncio.sleep(self.delay_s)
            with self._lock:
                self.in_flight -= 1
                self.received += 1

        return Litestar([hook], logging_config=None)  # the root logger stays caplog's


@pytest.fixture
def slow_receiver() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver(delay_s=0.02)
    with serving(receiver.app()) as url:
        yield receiver, f"{url}/hook"


def test_a_backlog_of_webhooks_is_sent_by_a_few_senders(
    slow_receiver: tuple[Receiver, str],
) -> None:
    receiver, url = slow_receiver

    async def send_all() -> list[int]:
        callbacks = Callbacks(senders=4)
        try:
            answers = await asyncio.gather(
                *(callbacks.post(url, b"{}", {}, 5.0) for _ in range(200))
            )
        finally:
            await callbacks.close()
        return [answer.status_code for answer in answers]

    statuses = asyncio.run(send_all())

    assert statuses == [204] * 200
    assert receiver.received == 200
    assert receiver.most_in_flight == 4


def test_closing_fails_the_queued_webhooks_at_once(caplog: pytest.LogCaptureFixture) -> None:
    receiver = Receiver(delay_s=30.0)  # never answers while the test runs

    async def close_with_a_backlog(url: str) -> tuple[list[object], float]:
        callbacks = Callbacks(senders=2)
        sent = [asyncio.ensure_future(callbacks.post(url, b"{}", {}, 60.0)) for _ in range(50)]
        while receiver.in_flight < 2:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await callbacks.close()
        outcomes: list[object] = list(await asyncio.gather(*sent, return_exceptions=True))
        return outcomes, time.monotonic() - started

    with serving(receiver.app(), timeout_graceful_shutdown=1) as base:
        outcomes, took = asyncio.run(close_with_a_backlog(f"{base}/hook"))

    assert all(isinstance(outcome, CallbacksClosed) for outcome in outcomes)
    assert took < 2.0
    assert receiver.received == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == ["sandbox webhooks: 48 still queued at shutdown, not sent"]  # 2 in flight


def test_a_closed_app_takes_webhooks_again_when_it_starts_again(
    slow_receiver: tuple[Receiver, str],
) -> None:
    _receiver, url = slow_receiver
    callbacks = Callbacks(senders=1)

    async def shut_down() -> None:
        await callbacks.post(url, b"{}", {}, 5.0)
        await callbacks.close()
        with pytest.raises(CallbacksClosed):
            await callbacks.post(url, b"{}", {}, 5.0)

    async def start_again() -> int:
        callbacks.open()
        try:
            return (await callbacks.post(url, b"{}", {}, 5.0)).status_code
        finally:
            await callbacks.close()

    asyncio.run(shut_down())
    assert asyncio.run(start_again()) == 204  # on a new event loop, as a restarted app runs


def test_closing_fails_webhooks_waiting_for_room_in_a_full_queue() -> None:
    receiver = Receiver(delay_s=30.0)

    async def close_when_full(url: str) -> list[object]:
        callbacks = Callbacks(senders=1, queue_size=2)
        sent = [asyncio.ensure_future(callbacks.post(url, b"{}", {}, 60.0)) for _ in range(10)]
        while receiver.in_flight < 1:
            await asyncio.sleep(0.01)
        await callbacks.close()
        done = await asyncio.wait_for(asyncio.gather(*sent, return_exceptions=True), timeout=2)
        return list(done)

    with serving(receiver.app(), timeout_graceful_shutdown=1) as base:
        outcomes = asyncio.run(close_when_full(f"{base}/hook"))

    assert len(outcomes) == 10
    assert all(isinstance(outcome, CallbacksClosed) for outcome in outcomes)
