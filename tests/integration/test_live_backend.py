"""The live updates' Redis backend: channels subscribed at the same moment (an owner's socket and
an admin's) are all heard, on the one subscription connection; a process with no web app (a
``bitloot worker --followers``) publishes every change, in order, to the order's channel and
the admin channel; with Redis down, publishing returns at once and logs one WARNING line."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

import pytest
import redis
from redis.asyncio import Redis

from adapters.live import LiveUpdates, ResilientRedisBackend
from tests.conftest import REDIS_URL


@pytest.mark.redis
def test_channels_subscribed_together_are_all_heard() -> None:
    """Eight channels subscribed at once, then one message published to all: each is heard."""

    async def run() -> set[str]:
        redis = Redis.from_url(REDIS_URL)
        backend = ResilientRedisBackend(redis=redis)
        channels = [f"bitloot-test-{uuid.uuid4().hex}" for _ in range(8)]
        try:
            await asyncio.gather(*(backend.subscribe([c]) for c in channels))
            await backend.publish(b"news", channels)
            heard: set[str] = set()
            events = backend.stream_events()
            async with asyncio.timeout(5):
                while heard != set(channels):
                    channel, _ = await anext(events)
                    heard.add(channel)
            return heard
        finally:
            await backend.on_shutdown()
            await redis.aclose()

    assert len(asyncio.run(run())) == 8


@pytest.mark.redis
def test_a_process_without_a_web_app_publishes_every_change_in_order() -> None:
    """No app has started (as in a worker running the projections): each change still reaches
    Redis, on the admin channel and on its order's, in the order it was handed over."""
    live = LiveUpdates.on_redis(REDIS_URL, f"bitloot-test-{uuid.uuid4().hex}")
    client = redis.Redis.from_url(REDIS_URL)
    subscription = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    subscription.subscribe(live.admin_channel, live.order_channel("o-1"))
    subscription.get_message(timeout=1)  # the subscribe confirmations
    try:
        for n in range(50):
            live.publish({"order_id": "o-1", "status": "paid", "n": n})
        heard: dict[str, list[int]] = {live.admin_channel: [], live.order_channel("o-1"): []}
        deadline = time.monotonic() + 5
        while sum(map(len, heard.values())) < 100 and time.monotonic() < deadline:
            message = subscription.get_message(timeout=0.5)
            if message is not None:
                heard[message["channel"].decode()].append(json.loads(message["data"])["n"])
        assert list(heard.values()) == [list(range(50)), list(range(50))]
    finally:
        live.close()
        subscription.close()
        client.close()


def test_with_redis_down_publishing_returns_at_once_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing listens on the port: every publish returns at once; one WARNING line, no
    traceback."""
    live = LiveUpdates.on_redis("redis://127.0.0.1:1/0", "bitloot-test-down")
    caplog.set_level(logging.WARNING, "adapters.live")
    try:
        started = time.monotonic()
        for n in range(200):
            live.publish({"order_id": "o-1", "n": n})
        assert time.monotonic() - started < 0.5
        deadline = time.monotonic() + 5
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        live.close()
    lines = [r for r in caplog.records if r.name == "adapters.live"]
    assert len(lines) == 1
    assert lines[0].levelno == logging.WARNING
    assert lines[0].exc_info is None
    assert "live update not published" in lines[0].getMessage()
