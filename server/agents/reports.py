"""Auto reports: stored first, then sent when (or as soon as) their client is connected."""

from __future__ import annotations

import logging

from models.agents import AgentRole
from server.agents.config import Agent
from server.agents.connections import AutoReport, ConnectionRegistry
from server.agents.history import AgentHistory, ReportStore

log = logging.getLogger(__name__)


class AutoReports:
    def __init__(
        self, registry: ConnectionRegistry, store: ReportStore, history: AgentHistory
    ) -> None:
        self._registry = registry
        self._store = store
        self._history = history

    async def publish(self, agent: Agent, client_id: str, task: str, content: str) -> None:
        """Keep the report (pending, and in the conversation so the agent can refer to it),
        then deliver it if the client is connected; otherwise it waits for the reconnect."""
        await self._store.add(agent, client_id, task, content)
        await self._history.add(agent, client_id, AgentRole.REPORT, content)
        await self.deliver_pending(client_id)

    async def deliver_pending(self, client_id: str) -> int:
        """Send the client's undelivered reports, oldest first; how many were sent.

        Runs in the client's block lane, so a report is never sent twice (a reconnect and a
        new report racing) and never lands inside a reply.
        """
        async with self._registry.block(client_id):
            link = self._registry.current(client_id)
            if link is None:
                return 0
            sent = 0
            for report in await self._store.pending(client_id):
                if not await link.send(AutoReport(report.content)):
                    break  # the connection went away: the rest waits for the next one
                await self._store.mark_delivered(report)
                sent += 1
            if sent:
                log.info("auto reports delivered", extra={"client": client_id, "count": sent})
            return sent
