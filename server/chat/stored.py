"""One stored chat message (a row of `chat_messages`), as the core and the caches see it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from models import ChatMessage
from server.chat import clock


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: str
    session_id: str
    sender: str
    message_type: str
    content: str
    created_at: datetime
    metadata: dict[str, Any] | None = None

    @property
    def timestamp_ms(self) -> int:
        return clock.to_ms(self.created_at)

    @classmethod
    def from_row(cls, row: ChatMessage) -> StoredMessage:
        return cls(
            id=row.id,
            session_id=row.session_id,
            sender=row.sender,
            message_type=row.message_type,
            content=row.content,
            created_at=row.created_at,
            metadata=row.metadata,
        )

    @classmethod
    def from_sql(cls, row: Any) -> StoredMessage:
        """A raw row (a dict on MySQL, a `sqlite3.Row` on SQLite) of `message_table.SELECTED`."""
        metadata = row["metadata"]
        return cls(
            id=row["id"],
            session_id=row["session_id"],
            sender=row["sender"],
            message_type=row["message_type"],
            content=row["content"],
            created_at=_as_utc(row["created_at"]),
            metadata=orjson.loads(metadata) if metadata else None,
        )


def _as_utc(value: datetime | str) -> datetime:
    """MySQL gives naive UTC datetimes, SQLite the text the ORM stored."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
