"""The per-user reveal limit: a token bucket that refills steadily."""

from __future__ import annotations

from adapters.rate_limit import RateLimiter


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bucket_empties_then_refills() -> None:
    """Three per minute: the fourth waits 20 s, and after 20 s one more is allowed."""
    ticks = Ticks()
    limiter = RateLimiter(3, per_seconds=60, clock=ticks)
    assert [limiter.allow("alice") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.allow("alice") == 20.0
    assert limiter.allow("bob") == 0.0
    ticks.now = 20.0
    assert limiter.allow("alice") == 0.0
    assert limiter.allow("alice") > 0
