"""Agent chat (CONTRACT §3): agents per project, history per (project, agent, client),
delegated tasks reported back automatically, and who is connected."""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis

from server.agents.config import AgentDirectory
from server.agents.connections import ConnectionRegistry
from server.agents.delegation import Delegations
from server.agents.history import AgentHistory, ReportStore
from server.agents.llms import AgentLLMs
from server.agents.reports import AutoReports
from server.agents.service import AgentChatService, ChatRequest
from server.auth import weak_secret
from server.chat.ratelimit import make_limiter
from server.chat.tools import Toolbox
from server.config import Settings
from server.safety.layer import SafetyLayer

__all__ = ["AgentChatService", "ChatRequest", "build_agent_chat"]

log = logging.getLogger(__name__)


async def build_agent_chat(
    settings: Settings, shared_toolbox: Toolbox, safety: SafetyLayer, redis: Redis | None = None
) -> AgentChatService:
    """The service with everything it needs; close it with `aclose()`."""
    directory = await asyncio.to_thread(AgentDirectory.load, settings.agents_path)
    if weak_secret(settings.auth_secret):
        log.warning("AUTH_SECRET is shorter than 32 bytes: tokens signed with it are weak")
    registry = ConnectionRegistry()
    history = AgentHistory()
    llms = AgentLLMs(settings)
    reports = AutoReports(registry, ReportStore(), history)
    delegations = Delegations(
        llms=llms,
        shared_toolbox=shared_toolbox,
        reports=reports,
        timeout_seconds=settings.ai_timeout_seconds,
        max_task_length=settings.max_message_length,
    )
    return AgentChatService(
        directory=directory,
        llms=llms,
        shared_toolbox=shared_toolbox,
        history=history,
        registry=registry,
        reports=reports,
        delegations=delegations,
        limiter=make_limiter(redis, settings.max_ai_requests_per_minute, "agents"),
        max_message_length=settings.max_message_length,
        context_messages=settings.history_context_messages,
        ai_timeout_seconds=settings.ai_timeout_seconds,
        delta_flush_seconds=settings.delta_flush_ms / 1000,
        safety=safety,
    )
