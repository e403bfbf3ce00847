"""Per-caller rate limits: a moving window of N actions a minute, per key."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from adapters.rate_limit import MemoryWindow, rate_limiter
from adapters.revocations import MemoryRevocations, RedisRevocations
from tests.conftest import REDIS_URL


@pytest.mark.parametrize("storage", ["memory://", REDIS_URL])
def test_the_window_fills_per_key(storage: str) -> None:
    """Three a minute: the fourth waits up to a minute; another key is unaffected."""
    limiter = rate_limiter(3, storage, namespace=f"test-{uuid.uuid4().hex}")
    assert [limiter.allow("alice") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert 0 < limiter.allow("alice") <= 60
    assert limiter.allow("bob") == 0.0


def test_two_limiters_on_redis_share_the_count() -> None:
    """Two processes' limiters on one Redis count together: the limit holds across them."""
    namespace = f"test-{uuid.uuid4().hex}"
    first, second = (rate_limiter(2, REDIS_URL, namespace) for _ in range(2))
    assert first.allow("carol") == 0.0
    assert second.allow("carol") == 0.0
    assert first.allow("carol") > 0
    assert second.allow("carol") > 0


def test_an_unreachable_redis_lets_requests_through(caplog: pytest.LogCaptureFixture) -> None:
    """A Redis outage must not turn every order into a 500: the limit is skipped, and said so."""
    limiter = rate_limiter(1, "redis://127.0.0.1:1/0", namespace="down")
    assert [limiter.allow("dan") for _ in range(2)] == [0.0, 0.0]
    assert "rate limit not checked" in caplog.text
    assert not RedisRevocations("redis://127.0.0.1:1/0", "down").is_revoked("some-jti")


def test_the_memory_window_slides_and_forgets_idle_keys() -> None:
    """An action leaves the window 60 s after it was taken; keys idle for a whole window are
    dropped (a shop with many customers does not keep them all)."""
    now = [1000.0]
    window = MemoryWindow(2, clock=lambda: now[0])
    assert [window.allow("erin"), window.allow("erin")] == [0.0, 0.0]
    now[0] += 20
    assert window.allow("erin") == pytest.approx(40.0)
    now[0] += 40
    assert window.allow("erin") == 0.0  # the first action has left the window
    assert window.allow("frank") == 0.0
    assert window.keys() == 2
    now[0] += 61
    assert window.allow("gina") == 0.0
    assert window.keys() == 1


@pytest.mark.parametrize("where", ["memory", "redis"])
def test_a_revocation_is_seen_by_the_event_loop_lookup(where: str) -> None:
    """The lookup the bearer middleware awaits sees a sign-out at once, in memory or through
    Redis (where it does not hold the loop while Redis answers)."""
    revocations: MemoryRevocations | RedisRevocations = (
        MemoryRevocations()
        if where == "memory"
        else RedisRevocations(REDIS_URL, f"test-{uuid.uuid4().hex}")
    )

    async def lookups() -> list[bool]:
        before = await revocations.is_revoked_async("jti-1")
        revocations.revoke("jti-1", time.time() + 60)
        after = await revocations.is_revoked_async("jti-1")
        other = await revocations.is_revoked_async("jti-2")
        await revocations.aclose()
        return [before, after, other]

    assert asyncio.run(lookups()) == [False, True, False]


def test_an_unreachable_redis_does_not_sign_everyone_out_on_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    revocations = RedisRevocations("redis://127.0.0.1:1/0", "down")

    async def lookup() -> bool:
        try:
            return await revocations.is_revoked_async("some-jti")
        finally:
            await revocations.aclose()

    assert asyncio.run(lookup()) is False
    assert "token revocation not checked" in caplog.text
