"""Tools the model may call, and running them on its behalf."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from server.ai.base import ToolCall, ToolSpec
from server.welfare import (
    TOOL_DESCRIPTION,
    TOOL_NAME,
    TOOL_PARAMETERS,
    WelfareCatalog,
    run_welfare_tool,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Tool:
    spec: ToolSpec
    run: Callable[[dict[str, Any]], Awaitable[Any]]


class Toolbox:
    def __init__(self, tools: Iterable[Tool]) -> None:
        self._tools = {t.spec.name: t for t in tools}
        self._specs = [t.spec for t in self._tools.values()]

    @property
    def specs(self) -> list[ToolSpec]:
        return list(self._specs)

    async def call(self, call: ToolCall) -> str:
        """The tool's result as JSON text; a bad call becomes an error the model can read."""
        tool = self._tools.get(call.name)
        if tool is None:
            return json.dumps({"error": f"unknown tool: {call.name}"}, ensure_ascii=False)
        try:
            arguments = json.loads(call.arguments or "{}")
            if not isinstance(arguments, dict):
                raise ValueError("arguments must be a JSON object")
            result = await tool.run(arguments)
        except (ValueError, TypeError) as exc:
            log.info("tool call rejected", extra={"tool": call.name, "reason": str(exc)})
            return json.dumps({"error": str(exc)}, ensure_ascii=False)
        return json.dumps(result, ensure_ascii=False)


INLINE_QUERY_CHARS = 300  # a longer query is analysed in a worker thread (~3 ms per 100 chars)


def welfare_tool(catalog: WelfareCatalog) -> Tool:
    async def run(arguments: dict[str, Any]) -> Any:
        if len(str(arguments.get("query", ""))) <= INLINE_QUERY_CHARS:
            return run_welfare_tool(catalog, arguments)
        return await asyncio.to_thread(run_welfare_tool, catalog, arguments)

    return Tool(ToolSpec(TOOL_NAME, TOOL_DESCRIPTION, TOOL_PARAMETERS), run)
