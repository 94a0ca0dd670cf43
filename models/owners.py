"""`session_owners`: which user a room, a counseling session or an agent client id belongs to
(with AUTH_SECRET). A new table: no existing table of the contract changes."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from models.chat import new_id


class SessionOwner(Model):
    id = fields.CharField(max_length=36, primary_key=True, default=new_id)
    kind = fields.CharField(max_length=16)  # `server.ownership.Kind`: room, counseling, agent
    session_id = fields.CharField(max_length=255)  # the room sid, session id or client id
    user_id = fields.CharField(max_length=255)  # the token's user who used it first
    created_at = fields.DatetimeField()

    class Meta:
        table = "session_owners"
        unique_together = (("kind", "session_id"),)  # one owner, even across instances
