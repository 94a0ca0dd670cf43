"""The agent chat core (CONTRACT §3): what the `/ws/chat/{client_id}` adapter calls.

Each client's frames are handled one at a time, in arrival order (a per-client queue), so a
burst of messages is answered in order, every start..end block complete before the next.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from models.agents import AgentRole
from server.agents.config import Agent, AgentDirectory
from server.agents.connections import AutoReport, ClientLink, ConnectionRegistry, Failure
from server.agents.delegation import Delegations, delegation_request
from server.agents.history import AgentHistory
from server.agents.llms import AgentLLMs
from server.agents.reply import ReplyOutput
from server.agents.reports import AutoReports
from server.agents.tools import AgentToolbox
from server.ai.base import PromptMessage
from server.conversation.lanes import Lanes
from server.conversation.ratelimit import Limiter
from server.conversation.tools import Toolbox
from server.conversation.turn import log_turn_failure, run_turn
from server.db import DB_UNAVAILABLE_ERRORS
from server.errors import ChatError, describe_failure
from server.grants import Grant
from server.logs import preview
from server.metrics import TurnClock
from server.safety.detector import SafetyFlag
from server.safety.layer import SafetyLayer
from server.tasks import BackgroundTasks
from server.texts import (
    AGENT_NOT_FOUND,
    AGENT_NOT_RUNNING,
    AI_FAILED,
    DELEGATION_EMPTY,
    MESSAGE_EMPTY,
    PROJECT_FORBIDDEN,
    RATE_LIMITED,
    TOO_MANY_DELEGATIONS,
    TOO_MANY_QUEUED,
    delegation_accepted,
    message_too_long,
)

log = logging.getLogger(__name__)

AGENT_PROTOCOL = "/ws/chat"  # the metrics' label
MAX_QUEUED_PER_CLIENT = 50  # frames waiting for their turn; beyond this they are refused


@dataclass(frozen=True, slots=True)
class ChatRequest:
    message: str
    agent_name: str
    project_id: str
    images: tuple[str, ...] = ()  # accepted; not passed to the model (text-only providers)


class AgentChatService:
    def __init__(
        self,
        *,
        directory: AgentDirectory,
        llms: AgentLLMs,
        shared_toolbox: Toolbox,
        history: AgentHistory,
        registry: ConnectionRegistry,
        reports: AutoReports,
        delegations: Delegations,
        limiter: Limiter,
        max_message_length: int,
        context_messages: int,
        ai_timeout_seconds: float,
        delta_flush_seconds: float,
        safety: SafetyLayer,
    ) -> None:
        self.safety = safety
        self.directory = directory
        self.llms = llms
        self.registry = registry
        self.reports = reports
        self._shared_toolbox = shared_toolbox
        self._history = history
        self._delegations = delegations
        self._limiter = limiter
        self._max_message_length = max_message_length
        self._context_messages = context_messages
        self._ai_timeout = ai_timeout_seconds
        self._flush_seconds = delta_flush_seconds
        self._order = Lanes()
        self._queued: Counter[str] = Counter()
        self._background = BackgroundTasks()

    # -- connections -------------------------------------------------------------------

    def connect(
        self, client_id: str, link: ClientLink, projects: Iterable[str] = ()
    ) -> ClientLink | None:
        """Register the connection and send what waited for it; returns the connection it
        replaces (the caller closes that one)."""
        replaced = self.registry.connect(client_id, link, projects)
        self._spawn(self.reports.deliver_pending(client_id))
        return replaced

    def disconnect(self, client_id: str, link: ClientLink) -> None:
        """Messages already received are still answered and stored (the client may be back)."""
        self.registry.disconnect(client_id, link)
        self._limiter.forget_idle()  # the limiter keeps a window per client id ever seen

    async def broadcast(self, content: str, project_id: str | None = None) -> int:
        """An `auto_report` to every connected client (of a project): how many got it.
        Not stored: only clients connected now receive it."""
        return await self.registry.broadcast(AutoReport(content), project_id)

    # -- frames, each in the client's queue ----------------------------------------------

    def submit_chat(self, client_id: str, request: ChatRequest, grant: Grant) -> None:
        self._submit(client_id, lambda: self._chat(client_id, request, grant))

    def submit_error(self, client_id: str, message: str) -> None:
        """A malformed frame's error, in order with the answers to the frames before it."""

        async def fail() -> None:
            raise ChatError(message)

        self._submit(client_id, fail)

    def _submit(self, client_id: str, work: Callable[[], Awaitable[None]]) -> None:
        if self._queued[client_id] >= MAX_QUEUED_PER_CLIENT:
            self._spawn(self.registry.send(client_id, Failure(TOO_MANY_QUEUED)))
            return
        self._queued[client_id] += 1
        self._spawn(self._in_order(client_id, work))

    async def _in_order(self, client_id: str, work: Callable[[], Awaitable[None]]) -> None:
        try:
            async with self._order.lane(client_id):
                try:
                    await work()
                except Exception as exc:
                    await self.registry.send(client_id, Failure(describe_failure(exc)))
        finally:
            self._queued[client_id] -= 1
            if self._queued[client_id] <= 0:
                del self._queued[client_id]

    # -- one chat message --------------------------------------------------------------

    async def _chat(self, client_id: str, request: ChatRequest, grant: Grant) -> None:
        agent = self._find_agent(request.project_id, request.agent_name, grant)
        text = request.message
        if not text.strip():
            raise ChatError(MESSAGE_EMPTY)
        if len(text) > self._max_message_length:
            raise ChatError(message_too_long(self._max_message_length))
        task = delegation_request(text) if agent.can_delegate else None
        if task == "":
            raise ChatError(DELEGATION_EMPTY)
        if task is not None and not self._delegations.can_accept(client_id):
            raise ChatError(TOO_MANY_DELEGATIONS)
        if not await self._limiter.allow(client_id):
            raise ChatError(RATE_LIMITED)
        self.registry.note_project(client_id, agent.project_id)
        flag = await self.safety.assess(text, protocol=AGENT_PROTOCOL, session_id=client_id)
        await self._history.add(agent, client_id, AgentRole.USER, text)
        log.info(
            "agent message",
            extra={"client": client_id, "agent": agent.name, "text": preview(text)},
        )
        if task is not None and flag is None:
            await self._accept_delegation(agent, client_id, task)
        else:  # a message at risk is answered now, never handed to a background task
            await self._answer(agent, client_id, flag)

    def _find_agent(self, project_id: str, agent_name: str, grant: Grant) -> Agent:
        agent = self.directory.find(project_id, agent_name)
        if agent is None:
            raise ChatError(AGENT_NOT_FOUND)
        if not grant.allows(project_id):
            raise ChatError(PROJECT_FORBIDDEN)
        if not agent.enabled:
            raise ChatError(AGENT_NOT_RUNNING)
        return agent

    async def _answer(self, agent: Agent, client_id: str, flag: SafetyFlag | None) -> None:
        turn = TurnClock(AGENT_PROTOCOL)
        context = await self._context(agent, client_id)
        own_tools = [self._delegations.tool_for(agent, client_id)] if agent.can_delegate else []
        shared = self._shared_toolbox if agent.can_search_welfare else None
        toolbox = AgentToolbox(shared, own_tools)
        llm = self.llms.for_agent(agent)
        async with self.registry.block(client_id):
            reply = ReplyOutput(self.registry, client_id, self._flush_seconds)
            await reply.start()
            try:
                result = await run_turn(
                    llm, toolbox, context, reply.add, timeout=self._ai_timeout, safety=flag
                )
            except Exception as exc:
                log_turn_failure(
                    log,
                    "agent turn failed",
                    exc,
                    {"client": client_id, "agent": agent.name, "provider": llm.name},
                )
                turn.failed()
                await reply.fail(AI_FAILED)
                return
            await reply.flush()
            try:
                await self._history.add(agent, client_id, AgentRole.ASSISTANT, result.text)
            except Exception as exc:
                turn.failed()
                await reply.fail(describe_failure(exc))
                return
            await reply.end()
            turn.done()

    async def _accept_delegation(self, agent: Agent, client_id: str, task: str) -> None:
        text = delegation_accepted(task)
        await self._history.add(agent, client_id, AgentRole.ASSISTANT, text)
        async with self.registry.block(client_id):
            reply = ReplyOutput(self.registry, client_id, self._flush_seconds)
            await reply.start()
            await reply.add(text)
            await reply.end()
        self._delegations.start(agent, client_id, task)

    async def _context(self, agent: Agent, client_id: str) -> list[PromptMessage]:
        """The agent's system prompt and the last N messages, ending with the one to answer."""
        turns = await self._history.recent(agent, client_id, self._context_messages)
        return [
            PromptMessage("system", agent.system_prompt),
            *(
                PromptMessage("user" if t.role is AgentRole.USER else "assistant", t.content)
                for t in turns
            ),
        ]

    # -- lifetime ----------------------------------------------------------------------

    def _spawn(self, work: Awaitable[object]) -> None:
        async def run() -> None:
            try:
                await work
            except DB_UNAVAILABLE_ERRORS as exc:  # an outage (reports wait for the reconnect)
                log.warning("agent chat background work failed: database unavailable: %s", exc)
            except Exception:  # nobody awaits these tasks: the failure is logged here
                log.exception("agent chat background work failed")

        self._background.spawn(run())

    async def drain(self, timeout: float) -> None:
        """Let answers being generated finish (graceful shutdown), then cancel the rest."""
        await self._background.drain(timeout)

    async def aclose(self) -> None:
        await self.drain(timeout=0)
        await self._delegations.aclose()
        await self.llms.aclose()
