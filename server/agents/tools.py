"""An agent's tools: the shared ones it is allowed (the welfare search) plus `delegate_task`,
bound to the conversation it is called from."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from server.ai.base import ToolCall, ToolSpec
from server.conversation.tools import Tool, Toolbox

DELEGATE_TOOL_SPEC = ToolSpec(
    name="delegate_task",
    description=(
        "시간이 걸리는 조사나 정리 작업을 백그라운드에 맡깁니다. 작업이 끝나면 결과가 "
        "사용자에게 자동으로 보고됩니다. 맡긴 뒤에는 사용자에게 맡았다고 알려 주세요."
    ),
    parameters={
        "type": "object",
        "properties": {"description": {"type": "string", "description": "맡길 작업을 한 문장으로"}},
        "required": ["description"],
    },
)


class AgentToolbox(Toolbox):
    """The shared toolbox (when the agent may use it) with tools of this conversation."""

    def __init__(self, shared: Toolbox | None, own: Iterable[Tool]) -> None:
        super().__init__(own)
        self._shared = shared

    @property
    def specs(self) -> list[ToolSpec]:
        shared = self._shared.specs if self._shared is not None else []
        return [*shared, *super().specs]

    async def call(self, call: ToolCall) -> str:
        is_own = any(spec.name == call.name for spec in super().specs)
        if is_own or self._shared is None:
            return await super().call(call)
        return await self._shared.call(call)


def delegate_tool(start: Callable[[str], Awaitable[dict[str, Any]]], max_length: int) -> Tool:
    """`delegate_task(description)` calling `start(description)`; bad arguments become an
    error the model can read (the toolbox turns ValueError into one)."""

    async def run(arguments: dict[str, Any]) -> Any:
        description = arguments.get("description")
        if not isinstance(description, str) or not description.strip():
            raise ValueError("description must be a non-empty string")
        if len(description) > max_length:
            raise ValueError(f"description is longer than {max_length} characters")
        return await start(description.strip())

    return Tool(DELEGATE_TOOL_SPEC, run)
