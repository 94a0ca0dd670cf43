"""The room log in the database (`room_messages`), used when no `REDIS_URL` is set."""

from __future__ import annotations

from typing import Any

from models.rooms import RoomMessage
from server.chat import clock
from server.db import DB_UNAVAILABLE_ERRORS
from server.rooms.log import LogEntry, LogUnavailable


class DatabaseRoomLog:
    name = "database"

    async def append(self, sid: str, participant: str, body: dict[str, Any]) -> LogEntry:
        try:
            row = await RoomMessage.create(
                session_id=sid,
                participant=participant,
                body=body,
                created_at=clock.next_timestamp(),  # strictly increasing: the log's order
            )
        except DB_UNAVAILABLE_ERRORS as exc:
            raise LogUnavailable() from exc
        return _entry(row)

    async def read(self, sid: str, limit: int) -> list[LogEntry]:
        try:
            rows = await RoomMessage.filter(session_id=sid).order_by("-created_at").limit(limit)
        except DB_UNAVAILABLE_ERRORS as exc:
            raise LogUnavailable() from exc
        return [_entry(row) for row in reversed(rows)]


def _entry(row: RoomMessage) -> LogEntry:
    return LogEntry(
        id=row.id,
        session_id=row.session_id,
        participant=row.participant,
        body=row.body,
        created_at=row.created_at,
    )
