"""Stored messages of a session (`chat_messages`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from models import ChatMessage, MessageType, Sender
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


class HistoryStore:
    async def add(
        self,
        session_id: str,
        sender: Sender,
        content: str,
        *,
        message_type: MessageType = MessageType.TEXT,
        metadata: dict[str, Any] | None = None,
    ) -> StoredMessage:
        stamp = clock.next_timestamp()
        row = await ChatMessage.create(
            session_id=session_id,
            sender=sender.value,
            message_type=message_type.value,
            content=content,
            metadata=metadata,
            created_at=stamp,
            updated_at=stamp,
        )
        return StoredMessage.from_row(row)

    async def recent(self, session_id: str, limit: int) -> list[StoredMessage]:
        """The last `limit` messages, oldest first."""
        rows = await ChatMessage.filter(session_id=session_id).order_by("-created_at").limit(limit)
        return [StoredMessage.from_row(r) for r in reversed(rows)]
