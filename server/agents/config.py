"""Agents per project, from a JSON file (`AGENTS_PATH`, default the shipped `agents.json`).

```json
{"projects": [{"id": "project_001", "name": "...", "agents": [
    {"name": "집사", "system_prompt": "...", "provider": null, "model": null,
     "enabled": true, "tools": ["search_welfare_services", "delegate_task"]}]}]}
```
`provider` null means the server's configured provider; `model` null its default model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models.agents import AGENT_NAME_LENGTH, PROJECT_ID_LENGTH
from server.config import ProviderName
from server.safety.prompts import with_risk_guidance

SHIPPED_AGENTS_PATH = Path(__file__).with_name("agents.json")
ToolName = Literal["search_welfare_services", "delegate_task"]
WELFARE_TOOL: ToolName = "search_welfare_services"
DELEGATE_TOOL: ToolName = "delegate_task"


class AgentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=AGENT_NAME_LENGTH)
    description: str = ""
    system_prompt: str = Field(min_length=1)
    provider: ProviderName | None = None
    model: str | None = Field(default=None, min_length=1)
    enabled: bool = True
    tools: tuple[ToolName, ...] = (WELFARE_TOOL, DELEGATE_TOOL)


class ProjectSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=PROJECT_ID_LENGTH)
    name: str = ""
    agents: tuple[AgentSpec, ...]

    @model_validator(mode="after")
    def _unique_agent_names(self) -> ProjectSpec:
        names = [a.name for a in self.agents]
        if len(names) != len(set(names)):
            raise ValueError(f"project {self.id}: agent names must be unique")
        return self


class AgentsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    projects: tuple[ProjectSpec, ...]

    @model_validator(mode="after")
    def _unique_project_ids(self) -> AgentsFile:
        ids = [p.id for p in self.projects]
        if len(ids) != len(set(ids)):
            raise ValueError("project ids must be unique")
        return self


@dataclass(frozen=True, slots=True)
class Agent:
    project_id: str
    name: str
    system_prompt: str
    provider: ProviderName | None
    model: str | None
    enabled: bool
    tools: tuple[str, ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.project_id, self.name)

    @property
    def can_search_welfare(self) -> bool:
        return WELFARE_TOOL in self.tools

    @property
    def can_delegate(self) -> bool:
        return DELEGATE_TOOL in self.tools


class AgentConfigError(Exception):
    """The agents file is missing or invalid: the server refuses to start with it."""


class AgentDirectory:
    def __init__(self, agents: list[Agent]) -> None:
        self._agents = {a.key: a for a in agents}

    @classmethod
    def load(cls, path: Path | None = None) -> AgentDirectory:
        """Read and validate the file (blocking: call it through `asyncio.to_thread`)."""
        source = path or SHIPPED_AGENTS_PATH
        try:
            parsed = AgentsFile.model_validate(json.loads(source.read_text(encoding="utf-8")))
        except (OSError, ValueError, ValidationError) as exc:
            raise AgentConfigError(f"cannot load agents from {source}: {exc}") from exc
        return cls(
            [
                Agent(
                    project_id=project.id,
                    name=spec.name,
                    system_prompt=with_risk_guidance(spec.system_prompt),
                    provider=spec.provider,
                    model=spec.model,
                    enabled=spec.enabled,
                    tools=spec.tools,
                )
                for project in parsed.projects
                for spec in project.agents
            ]
        )

    def find(self, project_id: str, agent_name: str) -> Agent | None:
        return self._agents.get((project_id, agent_name))

    def __len__(self) -> int:
        return len(self._agents)
