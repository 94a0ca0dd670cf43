"""`room_messages`: the database backend of the room log (CONTRACT §4), append-only."""

from __future__ import annotations

import uuid
from typing import Any

from tortoise import fields
from tortoise.models import Model


def new_room_message_id() -> str:
    return str(uuid.uuid4())


class RoomMessage(Model):
    id = fields.CharField(max_length=36, primary_key=True, default=new_room_message_id)
    session_id = fields.CharField(max_length=128, db_index=True)  # the `sid` of the room
    participant = fields.CharField(max_length=32)  # `hd.role`: A, B, llm, user, ...
    body: fields.Field[dict[str, Any]] = fields.JSONField()  # type: ignore[assignment]
    created_at = fields.DatetimeField()  # datetime(6) on MySQL: the log's order

    class Meta:
        table = "room_messages"
