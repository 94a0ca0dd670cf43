"""Chat completions, streamed, with tool calls.

Spoken over a small HTTP/1.1 client (`sse_client.py`) rather than through the `openai` SDK:
the SDK's request building, httpx and per-chunk models cost more CPU than the rest of a chat
turn together, and aiohttp's client still a quarter of it (`make bench`); a chat turn needs
one POST and a server-sent-event stream. The wire format is OpenAI's
(`tests/fakes/openai_server.py` speaks it); the speech providers still use the SDK
(`server/ai/openai/client.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson

from server.ai.base import LLMEvent, PromptMessage, ProviderError, TextDelta, ToolCall, ToolSpec
from server.ai.openai.sse_client import HTTPError, SSEClient

OPENAI_BASE_URL = "https://api.openai.com/v1"
ERROR_EXCERPT = 300  # characters of an error body kept for the log
# the network, TLS, or a server that does not speak HTTP/1.1 as expected
TRANSPORT_ERRORS = (OSError, EOFError, asyncio.LimitOverrunError, ValueError)


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
        # Deadlines are the caller's: every turn runs under AI_TIMEOUT_SECONDS (`timeout`),
        # and nothing is retried behind its back.
        self._client = SSEClient(
            (base_url or OPENAI_BASE_URL).rstrip("/") + "/chat/completions",
            {
                "Authorization": f"Bearer {api_key}",
                "Content-Type": "application/json",
                "Accept": "text/event-stream",
                "User-Agent": "mobok-server",
            },
        )

    async def stream(
        self, messages: Sequence[PromptMessage], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[LLMEvent]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(messages),
            "stream": True,
        }
        if tools:
            body["tools"] = to_openai_tools(tools)
        partial: dict[int, dict[str, str]] = {}
        try:
            async for chunk in _events(self._client.post_lines(orjson.dumps(body))):
                for event in _read_chunk(chunk, partial):
                    yield event
        except HTTPError as exc:
            raise ProviderError(f"openai: HTTP {exc.status}: {exc.body[:ERROR_EXCERPT]}") from exc
        except TRANSPORT_ERRORS as exc:
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
        await self._client.aclose()


async def _events(lines: AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any]]:
    """The JSON objects of a server-sent-event stream's `data:` lines, until `[DONE]`."""
    async for raw in lines:
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue  # blank separators, comments (`: keep-alive`), `event:` lines
        data = line[5:].strip()
        if data == b"[DONE]":
            return
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ProviderError("openai: malformed stream event") from exc
        if not isinstance(event, dict):
            raise ProviderError("openai: malformed stream event")
        if "error" in event:
            raise ProviderError(f"openai: stream error: {str(event['error'])[:ERROR_EXCERPT]}")
        yield event


def _read_chunk(chunk: dict[str, Any], partial: dict[int, dict[str, str]]) -> list[LLMEvent]:
    """A chunk's text; its tool-call pieces are gathered into `partial` (by index)."""
    choices = chunk.get("choices")
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
        return []
    delta = choices[0].get("delta")
    if not isinstance(delta, dict):
        return []
    events: list[LLMEvent] = []
    content = delta.get("content")
    if isinstance(content, str) and content:
        events.append(TextDelta(content))
    for tc in delta.get("tool_calls") or ():
        if not isinstance(tc, dict):
            continue
        index = tc.get("index", 0)
        slot = partial.setdefault(
            index if isinstance(index, int) else 0, {"id": "", "name": "", "arguments": ""}
        )
        if isinstance(tc.get("id"), str) and tc["id"]:
            slot["id"] = tc["id"]
        function = tc.get("function")
        if isinstance(function, dict):
            if isinstance(function.get("name"), str):
                slot["name"] += function["name"]
            if isinstance(function.get("arguments"), str):
                slot["arguments"] += function["arguments"]
    return events
