"""`agent_messages` and `agent_reports`: the agent chat of CONTRACT §3.

History is kept per (project, agent, client); a report of a delegated task waits in
`agent_reports` until its client is connected (`delivered_at` stays null until then).
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from models.fields import PlainTextField

# utf8mb4 index keys are limited to 3072 bytes on MySQL: the three ids of the history index
# (100 + 100 + 255 characters, 4 bytes each) and the timestamp fit.
PROJECT_ID_LENGTH = 100
AGENT_NAME_LENGTH = 100
CLIENT_ID_LENGTH = 255


def new_id() -> str:
    return str(uuid.uuid4())


class AgentRole(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    REPORT = "report"  # the result of a delegated task, part of the conversation from then on


class AgentMessage(Model):
    id = fields.CharField(max_length=36, primary_key=True, default=new_id)
    project_id = fields.CharField(max_length=PROJECT_ID_LENGTH)
    agent_name = fields.CharField(max_length=AGENT_NAME_LENGTH)
    client_id = fields.CharField(max_length=CLIENT_ID_LENGTH)
    role = fields.CharField(max_length=20)
    content = PlainTextField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "agent_messages"
        indexes = (("project_id", "agent_name", "client_id", "created_at"),)


class AgentReport(Model):
    id = fields.CharField(max_length=36, primary_key=True, default=new_id)
    client_id = fields.CharField(max_length=CLIENT_ID_LENGTH, db_index=True)
    project_id = fields.CharField(max_length=PROJECT_ID_LENGTH)
    agent_name = fields.CharField(max_length=AGENT_NAME_LENGTH)
    task = PlainTextField()
    content = PlainTextField()
    created_at = fields.DatetimeField()
    delivered_at = fields.DatetimeField(null=True)

    class Meta:
        table = "agent_reports"
