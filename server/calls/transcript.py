"""A call's transcript for its REST view: what the caller and the AI said, in order, each
caller utterance with its sentiment once judged (`metadata.sentiment`)."""

from __future__ import annotations

from typing import Any

from models import ChatMessage, MessageType
from models.calls import Call
from server.chat import clock

MAX_LINES = 1000  # a call of hours; more is cut, oldest kept


async def call_transcript(call: Call) -> list[dict[str, Any]]:
    rows = (
        await ChatMessage.filter(session_id=call.session_id, message_type=MessageType.AUDIO)
        .order_by("created_at", "id")
        .limit(MAX_LINES)
    )
    lines: list[dict[str, Any]] = []
    for row in rows:
        metadata = row.metadata if isinstance(row.metadata, dict) else {}
        if metadata.get("callId", call.id) != call.id:
            continue
        line: dict[str, Any] = {
            "id": row.id,
            "sender": row.sender,
            "content": row.content,
            "createdAt": clock.to_iso(row.created_at),
        }
        if isinstance(metadata.get("sentiment"), dict):
            line["sentiment"] = metadata["sentiment"]
        lines.append(line)
    return lines
