"""The one interface every chat model provider implements.

A provider streams `TextDelta`s and `ToolCall`s for a prompt. It never runs tools itself:
the conversation core (`server.conversation.turn`) runs them and calls the provider again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, exactly as the model produced it


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


LLMEvent = TextDelta | ToolCall


@dataclass(frozen=True, slots=True)
class PromptMessage:
    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)


class ProviderError(Exception):
    """The model could not produce a reply (network, HTTP error, malformed stream)."""


class LLM(Protocol):
    name: str

    def stream(
        self, messages: Sequence[PromptMessage], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[LLMEvent]: ...

    async def aclose(self) -> None: ...
