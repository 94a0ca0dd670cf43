"""The conversation of one client with one agent (`agent_messages`), and pending reports
(`agent_reports`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from models.agents import AgentMessage, AgentReport, AgentRole
from server.agents.config import Agent
from server.chat import clock


@dataclass(frozen=True, slots=True)
class AgentTurn:
    role: AgentRole
    content: str
    created_at: datetime


class AgentHistory:
    async def add(self, agent: Agent, client_id: str, role: AgentRole, content: str) -> None:
        await AgentMessage.create(
            project_id=agent.project_id,
            agent_name=agent.name,
            client_id=client_id,
            role=role.value,
            content=content,
            created_at=clock.next_timestamp(),
        )

    async def recent(self, agent: Agent, client_id: str, limit: int) -> list[AgentTurn]:
        """The last `limit` messages, oldest first."""
        rows = (
            await AgentMessage.filter(
                project_id=agent.project_id, agent_name=agent.name, client_id=client_id
            )
            .order_by("-created_at")
            .limit(limit)
        )
        return [AgentTurn(AgentRole(r.role), r.content, r.created_at) for r in reversed(rows)]


class ReportStore:
    async def add(self, agent: Agent, client_id: str, task: str, content: str) -> None:
        await AgentReport.create(
            client_id=client_id,
            project_id=agent.project_id,
            agent_name=agent.name,
            task=task,
            content=content,
            created_at=clock.next_timestamp(),
        )

    async def pending(self, client_id: str) -> list[AgentReport]:
        return await AgentReport.filter(client_id=client_id, delivered_at=None).order_by(
            "created_at"
        )

    async def mark_delivered(self, report: AgentReport) -> None:
        report.delivered_at = clock.now()
        await report.save(update_fields=["delivered_at"])
