"""Per-caller rate limits: a moving window of N actions per minute, counted in memory for the
embedded default and in Redis (the ``limits`` library) for the PostgreSQL + Redis wiring, so
that a limit holds across every API process.

The in-memory window is this module's own: ``limits``' memory storage expires its entries from
a timer thread it starts again every 10 ms while it holds any, which under load cost the API
process more than the counting itself."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

WINDOW_S = 60.0
MEMORY = "memory://"


class RateLimit(Protocol):
    """Allows so many actions per key in any 60 seconds."""

    def allow(self, key: str) -> float:
        """0 if ``key`` may act now (and count it), else the seconds until it may."""


def rate_limiter(per_minute: int, storage_uri: str = MEMORY, namespace: str = "") -> RateLimit:
    """``per_minute`` actions per key: in this process (``memory://``) or in Redis."""
    if storage_uri == MEMORY:
        return MemoryWindow(per_minute)
    return RedisWindow(per_minute, storage_uri, namespace)


class RedisWindow:
    """The moving window in Redis, shared by every process using the same namespace."""

    def __init__(self, per_minute: int, storage_uri: str, namespace: str) -> None:
        self._item = RateLimitItemPerMinute(per_minute)
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self._namespace = namespace

    def allow(self, key: str) -> float:
        """As ``RateLimit.allow``. While Redis is unreachable the limit is not enforced — one
        WARNING line per refused lookup — rather than every order answering 500."""
        try:
            allowed = self._limiter.hit(self._item, self._namespace, key)
        except RedisError as failure:
            log.warning("rate limit not checked, Redis unreachable: %r", failure)
            return 0.0
        if allowed:
            return 0.0
        stats = self._limiter.get_window_stats(self._item, self._namespace, key)
        return max(stats.reset_time - time.time(), 0.001)


class MemoryWindow:
    """The moving window in this process: each key's action times of the last minute. Keys
    idle for a whole window are dropped, at most once a window (no thread of its own)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = per_minute
        self._now = clock
        self._lock = threading.Lock()
        self._stamps: dict[str, deque[float]] = {}
        self._swept = clock()

    def allow(self, key: str) -> float:
        """As ``RateLimit.allow``: the wait is until the key's oldest action leaves the
        window."""
        now = self._now()
        with self._lock:
            if now - self._swept >= WINDOW_S:
                self._sweep(now)
            stamps = self._stamps.setdefault(key, deque())
            while stamps and now - stamps[0] >= WINDOW_S:
                stamps.popleft()
            if len(stamps) < self._limit:
                stamps.append(now)
                return 0.0
            return max(stamps[0] + WINDOW_S - now, 0.001)

    def keys(self) -> int:
        """How many keys the window holds (idle ones included until the next sweep)."""
        return len(self._stamps)

    def _sweep(self, now: float) -> None:
        self._stamps = {
            key: stamps
            for key, stamps in self._stamps.items()
            if stamps and now - stamps[-1] < WINDOW_S
        }
        self._swept = now
