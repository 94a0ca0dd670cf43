"""Stored counseling exchanges (`conversations`)."""

from __future__ import annotations

from dataclasses import dataclass

from models.counseling import Conversation
from server.chat import clock


@dataclass(frozen=True, slots=True)
class Exchange:
    user_message: str
    ai_response: str


class ConversationStore:
    async def add(
        self,
        session_id: str,
        user_message: str,
        ai_response: str,
        emotion: str | None,
        client_timestamp: int | None,
    ) -> Conversation:
        # strictly increasing within the process: exchanges of one session keep their order
        return await Conversation.create(
            session_id=session_id,
            user_message=user_message,
            ai_response=ai_response,
            emotion=emotion,
            timestamp=client_timestamp,
            created_at=clock.next_timestamp(),
        )

    async def recent(self, session_id: str, limit: int) -> list[Exchange]:
        """The last `limit` exchanges of the session, oldest first."""
        rows = (
            await Conversation.filter(session_id=session_id)
            .order_by("-created_at")
            .limit(limit)
            .values_list("user_message", "ai_response")
        )
        return [Exchange(user, ai) for user, ai in reversed(rows)]
