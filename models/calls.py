"""`calls`, column for column as the NestJS calls module stored them (CONTRACT §2.1)."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from models.chat import new_id


class Call(Model):
    id = fields.CharField(max_length=36, primary_key=True, default=new_id)
    session_id = fields.CharField(max_length=255, unique=True)
    caller_number = fields.CharField(max_length=20)
    receiver_number = fields.CharField(max_length=20, null=True)
    status = fields.CharField(max_length=20)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    connected_at = fields.DatetimeField(null=True)
    ended_at = fields.DatetimeField(null=True)
    duration = fields.IntField(null=True)  # whole seconds from connected_at to ended_at

    class Meta:
        table = "calls"
