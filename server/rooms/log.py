"""The room log (CONTRACT §4): one append-only list of frames per room, two backends.

Every frame a room sees is appended with its participant tag (`A`, `B`, `llm`, `user`, ...)
and read back oldest first, for the history route and for the model's context.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from server.errors import ChatError
from server.texts import TEMPORARY_FAILURE


@dataclass(frozen=True, slots=True)
class LogEntry:
    id: str  # a Redis Stream id (`1700641234567-0`) or a uuid (database)
    session_id: str
    participant: str
    body: dict[str, Any]  # the frame exactly as it was stored and broadcast
    created_at: datetime


class RoomLog(Protocol):
    name: str

    async def append(self, sid: str, participant: str, body: dict[str, Any]) -> LogEntry: ...

    async def read(self, sid: str, limit: int) -> Sequence[LogEntry]:
        """The last `limit` entries of the room, oldest first; none for an unknown room."""
        ...


class LogUnavailable(ChatError):
    """The store behind the log (Redis or the database) did not answer."""

    def __init__(self) -> None:
        super().__init__(TEMPORARY_FAILURE)
