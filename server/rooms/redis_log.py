"""The room log as a Redis Stream `chat:session:{sid}`, used when `REDIS_URL` is set.

Each entry has the two fields the original server wrote (and its `check_redis_chat.py`
reads): `participant` and `body`, the frame as JSON text. The entry's time is its stream id.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.rooms.log import LogEntry, LogUnavailable

log = logging.getLogger(__name__)


def stream_key(sid: str) -> str:
    return f"chat:session:{sid}"


class RedisRoomLog:
    name = "redis"

    def __init__(self, redis: Redis) -> None:  # a client made with decode_responses=True
        self._redis = redis

    async def append(self, sid: str, participant: str, body: dict[str, Any]) -> LogEntry:
        fields: dict[Any, Any] = {"participant": participant, "body": orjson.dumps(body).decode()}
        try:
            entry_id = await self._redis.xadd(stream_key(sid), fields)
        except (RedisError, OSError) as exc:
            raise LogUnavailable() from exc
        return LogEntry(str(entry_id), sid, participant, body, _time_of(str(entry_id)))

    async def read(self, sid: str, limit: int) -> list[LogEntry]:
        try:
            rows: list[Any] = await self._redis.xrevrange(stream_key(sid), count=limit) or []
        except (RedisError, OSError) as exc:
            raise LogUnavailable() from exc
        entries = [_entry(sid, entry_id, fields) for entry_id, fields in reversed(rows)]
        return [e for e in entries if e is not None]


def _entry(sid: str, entry_id: str, fields: dict[str, str]) -> LogEntry | None:
    """An entry of the stream; one another writer left unreadable is skipped, not fatal."""
    try:
        body = orjson.loads(fields.get("body", ""))
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        log.warning("unreadable room log entry skipped", extra={"sid": sid, "id": entry_id})
        return None
    return LogEntry(entry_id, sid, fields.get("participant") or "user", body, _time_of(entry_id))


def _time_of(entry_id: str) -> datetime:
    """A stream id starts with the milliseconds at which Redis appended the entry."""
    milliseconds = int(entry_id.partition("-")[0])
    return datetime.fromtimestamp(milliseconds / 1000, UTC)
