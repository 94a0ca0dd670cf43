"""Which room log backend runs: the Redis Stream when `REDIS_URL` is set, else the database."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.rooms.db_log import DatabaseRoomLog
from server.rooms.log import RoomLog
from server.rooms.redis_log import RedisRoomLog

log = logging.getLogger(__name__)


@asynccontextmanager
async def open_room_log(redis_url: str | None) -> AsyncIterator[RoomLog]:
    if not redis_url:
        yield DatabaseRoomLog()
        return
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            # not fatal: Redis may come up later; until then the room answers a temporary error
            log.warning("Redis unreachable for the room log: %s", exc)
        yield RedisRoomLog(client)
    finally:
        await client.aclose()
