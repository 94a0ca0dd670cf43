"""`conversations`: one counseling exchange per row, as CONTRACT §5 names the columns."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from models.chat import new_id
from models.fields import PlainTextField


class Conversation(Model):
    """A user message and the complete AI reply to it, stored once the reply has finished."""

    id = fields.CharField(max_length=36, primary_key=True, default=new_id)
    # as long as the widest session id the endpoint accepts ([A-Za-z0-9_-]{1,128})
    session_id = fields.CharField(max_length=128, db_index=True)
    user_message = PlainTextField()
    ai_response = PlainTextField()
    # one of the eight emotions; NULL when the client sent none or one we do not know
    emotion = fields.CharField(max_length=20, null=True)
    # the client's own request time in epoch milliseconds, as the source system stored it
    # (BIGINT); NULL when the client sent none or an unreadable one
    timestamp = fields.BigIntField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "conversations"
