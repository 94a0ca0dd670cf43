"""Delegated tasks: background work whose result comes back as an `auto_report`.

A task starts from the agent's `delegate_task` tool, or from a chat message
`/report <task>` (or `/delegate <task>`), which works with every provider, offline included.
The agent's model does the work in one bounded turn (welfare search allowed); the result, or
a failure notice, is published as a report: stored, then delivered now or on reconnect.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from server.agents.config import Agent
from server.agents.llms import AgentLLMs
from server.agents.reports import AutoReports
from server.agents.tools import delegate_tool
from server.ai.base import PromptMessage
from server.conversation.tools import Tool, Toolbox
from server.conversation.turn import run_turn
from server.logs import preview
from server.texts import TOO_MANY_DELEGATIONS, delegation_done, delegation_failed

log = logging.getLogger(__name__)

COMMANDS = ("/report", "/delegate")
MAX_RUNNING_PER_CLIENT = 3
DELEGATED_WORK_PROMPT = (
    "지금은 사용자가 맡긴 작업을 혼자 수행하는 중입니다. 필요하면 도구로 찾아보고, "
    "결과를 사용자에게 보낼 짧은 보고서로 정리하세요. 되묻지 말고 할 수 있는 만큼 하세요."
)


def delegation_request(text: str) -> str | None:
    """The task of a `/report <task>` or `/delegate <task>` message ('' when it names none);
    None for any other message."""
    stripped = text.strip()
    for command in COMMANDS:
        rest = stripped.removeprefix(command)
        if rest != stripped and (not rest or rest[0].isspace()):
            return rest.strip()
    return None


class Delegations:
    def __init__(
        self,
        *,
        llms: AgentLLMs,
        shared_toolbox: Toolbox,
        reports: AutoReports,
        timeout_seconds: float,
        max_task_length: int,
    ) -> None:
        self._llms = llms
        self._shared_toolbox = shared_toolbox
        self._reports = reports
        self._timeout = timeout_seconds
        self._max_task_length = max_task_length
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: Counter[str] = Counter()

    def can_accept(self, client_id: str) -> bool:
        return self._running[client_id] < MAX_RUNNING_PER_CLIENT

    def start(self, agent: Agent, client_id: str, task: str) -> bool:
        """Start the work in the background; False when the client has too many running."""
        if not self.can_accept(client_id):
            return False
        self._running[client_id] += 1
        job = asyncio.create_task(self._run(agent, client_id, task))
        self._tasks.add(job)

        def finished(done: asyncio.Task[None]) -> None:
            self._tasks.discard(done)
            self._running[client_id] -= 1
            if self._running[client_id] <= 0:
                del self._running[client_id]

        job.add_done_callback(finished)
        log.info("task delegated", extra={"client": client_id, "task": preview(task)})
        return True

    def tool_for(self, agent: Agent, client_id: str) -> Tool:
        """`delegate_task` for the model, bound to this agent and client."""

        async def start(description: str) -> dict[str, Any]:
            if not self.start(agent, client_id, description):
                return {"status": "refused", "reason": TOO_MANY_DELEGATIONS}
            return {"status": "started", "task": description, "report": "자동으로 보고됩니다"}

        return delegate_tool(start, self._max_task_length)

    async def aclose(self) -> None:
        """Cancel the work still running (shutdown): it produces no report."""
        for job in list(self._tasks):
            job.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, agent: Agent, client_id: str, task: str) -> None:
        content = await self._perform(agent, task)
        try:
            await self._reports.publish(agent, client_id, task, content)
        except Exception:  # nobody awaits this task: the failure is logged here
            log.exception("could not publish an auto report", extra={"client": client_id})

    async def _perform(self, agent: Agent, task: str) -> str:
        messages = [
            PromptMessage("system", f"{agent.system_prompt}\n\n{DELEGATED_WORK_PROMPT}"),
            PromptMessage("user", task),
        ]
        toolbox = self._shared_toolbox if agent.can_search_welfare else Toolbox([])
        try:
            async with asyncio.timeout(self._timeout):
                result = await run_turn(self._llms.for_agent(agent), toolbox, messages)
        except Exception as exc:  # provider failure or timeout: the user is told so
            log.warning("delegated task failed", extra={"agent": agent.name}, exc_info=exc)
            return delegation_failed(task)
        return delegation_done(task, result.text)
