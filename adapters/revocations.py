"""Revoked tokens: the ``jti`` of every token signed out before it expired, kept until it
would have expired anyway. In memory for the embedded default (one process), in Redis for the
PostgreSQL + Redis wiring, so that a sign-out holds in every API process."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import redis
import redis.asyncio
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# A Redis that does not answer (not one that refuses) must not hold a request for long: the
# lookup then fails, and the token is taken as not revoked (one WARNING line).
REDIS_TIMEOUT_S = 2.0


class MemoryRevocations:
    """Revocations of this process."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def revoke(self, jti: str, expires_at: float) -> None:
        """Refuse the token with this id until ``expires_at`` (a Unix time)."""
        with self._lock:
            now = time.time()
            self._until = {k: v for k, v in self._until.items() if v > now}
            self._until[jti] = expires_at

    def is_revoked(self, jti: str) -> bool:
        """Whether the token with this id was signed out."""
        return self._until.get(jti, 0.0) > time.time()

    async def is_revoked_async(self, jti: str) -> bool:
        """``is_revoked`` for an event loop (a dictionary lookup: it never waits)."""
        return self.is_revoked(jti)

    async def aclose(self) -> None:
        """Nothing to release."""


class RedisRevocations:
    """Revocations shared by every process through Redis keys that expire with the token."""

    def __init__(self, url: str, namespace: str) -> None:
        self._url = url
        self._redis = redis.Redis.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S
        )
        self._on_loops: dict[asyncio.AbstractEventLoop, redis.asyncio.Redis] = {}
        self._prefix = f"{namespace}:revoked:"

    def revoke(self, jti: str, expires_at: float) -> None:
        """Refuse the token with this id until ``expires_at`` (a Unix time)."""
        seconds = max(int(expires_at - time.time()) + 1, 1)
        self._redis.set(self._prefix + jti, b"1", ex=seconds)

    def is_revoked(self, jti: str) -> bool:
        """Whether the token with this id was signed out. While Redis is unreachable a token is
        taken as not revoked (one WARNING line), so that an outage does not sign everyone out."""
        try:
            return bool(self._redis.exists(self._prefix + jti))
        except RedisError as failure:
            log.warning("token revocation not checked, Redis unreachable: %r", failure)
            return False

    async def is_revoked_async(self, jti: str) -> bool:
        """``is_revoked`` for an event loop: the lookup does not hold the loop while Redis
        answers (each loop gets its own client, made on first use)."""
        loop = asyncio.get_running_loop()
        client = self._on_loops.get(loop)
        if client is None:
            client = self._on_loops[loop] = redis.asyncio.Redis.from_url(
                self._url, socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S
            )
        try:
            return bool(await client.exists(self._prefix + jti))
        except RedisError as failure:
            log.warning("token revocation not checked, Redis unreachable: %r", failure)
            return False

    async def aclose(self) -> None:
        """Release the running loop's client."""
        client = self._on_loops.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def close(self) -> None:
        """Release the connection."""
        self._redis.close()
