"""One model client per agent, made on first use from the agent's provider and model."""

from __future__ import annotations

from server.agents.config import Agent
from server.ai.base import LLM
from server.ai.factory import create_llm
from server.config import Settings


class AgentLLMs:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: dict[tuple[str, str], LLM] = {}
        self._owned: list[LLM] = []

    def for_agent(self, agent: Agent) -> LLM:
        client = self._clients.get(agent.key)
        if client is None:
            client = create_llm(self._settings, agent.provider, agent.model)
            self._clients[agent.key] = client
            self._owned.append(client)
        return client

    def use(self, project_id: str, agent_name: str, llm: LLM) -> None:
        """Answer this agent with `llm` from now on (tests, embedding); its owner closes it."""
        self._clients[(project_id, agent_name)] = llm

    async def aclose(self) -> None:
        owned, self._owned = self._owned, []
        self._clients.clear()
        for client in owned:
            await client.aclose()
