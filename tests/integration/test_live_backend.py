"""The live updates' Redis backend: channels subscribed at the same moment (an owner's socket and
an admin's) are all heard, on the one subscription connection."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from adapters.live import ResilientRedisBackend
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
