"""Per-caller rate limits on the ``limits`` library: a moving window of N actions per minute,
counted in memory for the embedded default and in Redis for the PostgreSQL + Redis wiring, so
that a limit holds across every API process."""

from __future__ import annotations

import logging
import time

from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class RateLimiter:
    """Allows ``per_minute`` actions per key in any 60 seconds."""

    def __init__(
        self, per_minute: int, storage_uri: str = "memory://", namespace: str = ""
    ) -> None:
        self._item = RateLimitItemPerMinute(per_minute)
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self._namespace = namespace

    def allow(self, key: str) -> float:
        """0 if ``key`` may act now (and count it), else the seconds until it may. While the
        shared storage (Redis) is unreachable the limit is not enforced — one WARNING line per
        refused lookup — rather than every order answering 500."""
        try:
            allowed = self._limiter.hit(self._item, self._namespace, key)
        except RedisError as failure:
            log.warning("rate limit not checked, Redis unreachable: %r", failure)
            return 0.0
        if allowed:
            return 0.0
        stats = self._limiter.get_window_stats(self._item, self._namespace, key)
        return max(stats.reset_time - time.time(), 0.001)
