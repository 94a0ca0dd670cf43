"""A call's transcript for its REST view: every message of the call's session, oldest first,
as the privacy routes show them, each caller utterance with its sentiment once judged
(`metadata.sentiment`)."""

from __future__ import annotations

from typing import Any

from models import ChatMessage
from models.calls import Call
from server.admin.privacy import message_json


async def call_transcript(call: Call) -> list[dict[str, Any]]:
    rows = await ChatMessage.filter(session_id=call.session_id).order_by("created_at", "id")
    lines: list[dict[str, Any]] = []
    for row in rows:
        line = message_json(row)
        metadata = row.metadata if isinstance(row.metadata, dict) else {}
        if isinstance(metadata.get("sentiment"), dict):
            line["sentiment"] = metadata["sentiment"]
        lines.append(line)
    return lines
