"""`chat_sessions` and `chat_messages`, column for column as CONTRACT §1.2."""

from __future__ import annotations

import uuid
from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from models.fields import PlainTextField


def new_id() -> str:
    return str(uuid.uuid4())


class Sender(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"


class MessageType(StrEnum):
    TEXT = "TEXT"
    AUDIO = "AUDIO"
    SYSTEM = "SYSTEM"


class ChatSession(Model):
    id = fields.CharField(max_length=36, primary_key=True, default=new_id)
    user_id = fields.CharField(max_length=255)
    session_id = fields.CharField(max_length=255, unique=True)
    is_active = fields.BooleanField(default=True)
    last_activity = fields.DatetimeField(db_index=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "chat_sessions"


class ChatMessage(Model):
    id = fields.CharField(max_length=36, primary_key=True, default=new_id)
    session_id = fields.CharField(max_length=255, db_index=True)
    sender = fields.CharField(max_length=50)
    message_type = fields.CharField(max_length=50, default=MessageType.TEXT.value)
    content = PlainTextField()
    metadata: fields.Field[dict | None] = fields.JSONField(null=True)  # type: ignore[assignment]
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "chat_messages"
