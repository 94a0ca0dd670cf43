"""Sliding one-minute window of AI requests per key: in this process, or shared through Redis
by every instance (`REDIS_URL`)."""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class Limiter(Protocol):
    async def allow(self, key: str) -> bool: ...

    def forget_idle(self) -> None: ...


class RateLimiter:
    def __init__(self, limit: int, window_seconds: float = 60.0) -> None:
        self.limit = limit
        self.window = window_seconds
        self._hits: dict[str, deque[float]] = {}

    async def allow(self, key: str) -> bool:
        """Count one request for `key`; False when it is over the limit (not counted then)."""
        now = time.monotonic()
        hits = self._hits.setdefault(key, deque())
        while hits and now - hits[0] >= self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        return True

    def forget_idle(self) -> None:
        now = time.monotonic()
        for key in [k for k, h in self._hits.items() if not h or now - h[-1] >= self.window]:
            del self._hits[key]


# One round trip, atomic: drop hits older than the window, refuse at the limit, else record.
_SLIDING_WINDOW = """
local key, now, window, limit, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]),
    tonumber(ARGV[3]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) >= limit then return 0 end
redis.call('ZADD', key, now, member)
redis.call('PEXPIRE', key, math.ceil(window * 1000))
return 1
"""


class RedisRateLimiter:
    """The same window, kept in Redis (a sorted set per key) so every instance counts
    together. If Redis is unreachable the request is allowed: the limit protects the model
    budget, and an outage of Redis should not stop the chat."""

    def __init__(self, redis: Redis, limit: int, scope: str, window_seconds: float = 60.0) -> None:
        self.limit = limit
        self.window = window_seconds
        self._prefix = f"mobok:rate:{scope}:"
        self._redis = redis
        self._script = redis.register_script(_SLIDING_WINDOW)

    async def allow(self, key: str) -> bool:
        try:
            allowed = await self._script(
                keys=[self._prefix + key],
                args=[time.time(), self.window, self.limit, uuid.uuid4().hex],
            )
        except (RedisError, OSError) as exc:
            log.warning("rate limit not checked, redis unavailable: %s", exc)
            return True
        return bool(allowed)

    def forget_idle(self) -> None:
        """Nothing to do: Redis expires a key one window after its last hit."""


def make_limiter(
    redis: Redis | None, limit: int, scope: str, window_seconds: float = 60.0
) -> Limiter:
    if redis is not None:
        return RedisRateLimiter(redis, limit, scope, window_seconds)
    return RateLimiter(limit, window_seconds)
