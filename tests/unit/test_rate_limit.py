"""Per-caller rate limits: a moving window of N actions a minute, per key."""

from __future__ import annotations

import uuid

import pytest

from adapters.rate_limit import RateLimiter
from adapters.revocations import RedisRevocations
from tests.conftest import REDIS_URL


@pytest.mark.parametrize("storage", ["memory://", REDIS_URL])
def test_the_window_fills_per_key(storage: str) -> None:
    """Three a minute: the fourth waits up to a minute; another key is unaffected."""
    limiter = RateLimiter(3, storage, namespace=f"test-{uuid.uuid4().hex}")
    assert [limiter.allow("alice") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert 0 < limiter.allow("alice") <= 60
    assert limiter.allow("bob") == 0.0


def test_two_limiters_on_redis_share_the_count() -> None:
    """Two processes' limiters on one Redis count together: the limit holds across them."""
    namespace = f"test-{uuid.uuid4().hex}"
    first, second = (RateLimiter(2, REDIS_URL, namespace) for _ in range(2))
    assert first.allow("carol") == 0.0
    assert second.allow("carol") == 0.0
    assert first.allow("carol") > 0
    assert second.allow("carol") > 0


def test_an_unreachable_redis_lets_requests_through(caplog: pytest.LogCaptureFixture) -> None:
    """A Redis outage must not turn every order into a 500: the limit is skipped, and said so."""
    limiter = RateLimiter(1, "redis://127.0.0.1:1/0", namespace="down")
    assert [limiter.allow("dan") for _ in range(2)] == [0.0, 0.0]
    assert "rate limit not checked" in caplog.text
    assert not RedisRevocations("redis://127.0.0.1:1/0", "down").is_revoked("some-jti")
