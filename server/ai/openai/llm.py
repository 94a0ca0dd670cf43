"""Chat completions, streamed, with tool calls."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import openai

from server.ai.base import LLMEvent, PromptMessage, ProviderError, TextDelta, ToolCall, ToolSpec


def to_openai_messages(messages: Sequence[PromptMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        item: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            item["content"] = m.content or None
            item["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in m.tool_calls
            ]
        if m.tool_call_id is not None:
            item["tool_call_id"] = m.tool_call_id
        out.append(item)
    return out


def to_openai_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
        }
        for t in tools
    ]


class OpenAILLM:
    name = "openai"

    def __init__(
        self, *, api_key: str, model: str, base_url: str | None = None, timeout: float = 30.0
    ) -> None:
        self.model = model
        # Our own deadline (AI_TIMEOUT_SECONDS) bounds the whole turn; SDK retries would
        # silently spend it, so they are off.
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0
        )

    async def stream(
        self, messages: Sequence[PromptMessage], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[LLMEvent]:
        kwargs: dict[str, Any] = {}
        if tools:
            kwargs["tools"] = to_openai_tools(tools)
        try:
            stream = await self._client.chat.completions.create(
                model=self.model,
                messages=to_openai_messages(messages),  # type: ignore[arg-type]
                stream=True,
                **kwargs,
            )
            partial: dict[int, dict[str, str]] = {}
            async for chunk in stream:  # type: ignore[union-attr]
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta
                if delta.content:
                    yield TextDelta(delta.content)
                for tc in delta.tool_calls or ():
                    slot = partial.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                    if tc.id:
                        slot["id"] = tc.id
                    if tc.function and tc.function.name:
                        slot["name"] += tc.function.name
                    if tc.function and tc.function.arguments:
                        slot["arguments"] += tc.function.arguments
        except openai.OpenAIError as exc:
            raise ProviderError(f"openai: {type(exc).__name__}: {exc}") from exc
        for index in sorted(partial):
            slot = partial[index]
            if not slot["name"]:
                raise ProviderError("openai: tool call without a name")
            yield ToolCall(
                id=slot["id"] or f"call_{index}",
                name=slot["name"],
                arguments=slot["arguments"] or "{}",
            )

    async def aclose(self) -> None:
        await self._client.close()
