"""Chat completions, streamed, with tool calls."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from typing import Any

import aiohttp
import orjson

from server.ai.base import LLMEvent, PromptMessage, ProviderError, TextDelta, ToolCall, ToolSpec

DEFAULT_BASE_URL = "https://api.openai.com/v1"
MAX_CONNECTIONS = 1000  # to the model API at once (the SDK's default)
MAX_LINE_BYTES = 1 << 20


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


async def sse_data(lines: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """The `data` of each server-sent event, its lines joined (the SSE spec's reading)."""
    data: list[bytes] = []
    async for raw in lines:
        line = raw.rstrip(b"\r\n")
        if not line:
            if data:
                yield b"\n".join(data)
                data.clear()
        elif line.startswith(b"data:"):
            data.append(line[6:] if line.startswith(b"data: ") else line[5:])
    if data:
        yield b"\n".join(data)


def read_chunk(data: bytes) -> tuple[str, list[dict[str, Any]]]:
    """A `chat.completion.chunk`'s text and tool-call deltas; ProviderError when it is not one."""
    try:
        chunk = orjson.loads(data)
        if chunk.get("error"):
            raise ProviderError(f"openai: {error_message(chunk) or 'an error in the stream'}")
        choices = chunk.get("choices")
        if not choices:
            return "", []
        delta = choices[0].get("delta") or {}
        return delta.get("content") or "", delta.get("tool_calls") or []
    except (orjson.JSONDecodeError, AttributeError, TypeError, IndexError) as exc:
        raise ProviderError(f"openai: a malformed stream chunk ({type(exc).__name__})") from exc


def error_message(body: Any) -> str | None:
    """The `error.message` of an OpenAI error body, if it has one."""
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) else None


class OpenAILLM:
    """Streamed chat completions, spoken over aiohttp rather than through the `openai` SDK.

    The SDK (kept for transcription and speech) spent 1.1 ms of CPU per streamed completion
    at best (its aiohttp transport, the prompt in `extra_body`, chunks read as JSON) and 9 ms
    as it comes; one POST and a line reader over aiohttp spend 0.3 ms. At 1000 concurrent
    chats that is the difference between 0.6x and more than 1.2x the reference's turns/s
    (`make bench`, README "Benchmarks")."""

    name = "openai"

    def __init__(
        self, *, api_key: str, model: str, base_url: str | None = None, timeout: float = 30.0
    ) -> None:
        self.model = model
        self._url = (base_url or DEFAULT_BASE_URL).rstrip("/") + "/chat/completions"
        self._headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        # the whole turn has our own deadline (AI_TIMEOUT_SECONDS); these bound each step
        self._timeout = aiohttp.ClientTimeout(sock_connect=timeout, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # made in the running loop, on first use
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
                timeout=self._timeout,
                read_bufsize=MAX_LINE_BYTES,  # one SSE line may carry a long tool call
            )
        return self._session

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
            async with self._client().post(
                self._url, data=orjson.dumps(body), headers=self._headers
            ) as response:
                if response.status >= 400:
                    raise ProviderError(await status_error(response))
                done = False
                # read on to the end after `[DONE]`: a response read whole lets aiohttp keep
                # the connection for the next request (one left unread is closed)
                async for data in sse_data(response.content):
                    if done or data == b"[DONE]":
                        done = True
                        continue
                    content, tool_calls = read_chunk(data)
                    if content:
                        yield TextDelta(content)
                    for tc in tool_calls:
                        add_tool_call_delta(partial, tc)
        except (aiohttp.ClientError, ValueError) as exc:  # ValueError: a line over the limit
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
        if self._session is not None:
            await self._session.close()


async def status_error(response: aiohttp.ClientResponse) -> str:
    """`openai: HTTP 429: <the API's message>` for an answer that is an error."""
    try:
        message = error_message(orjson.loads(await response.content.read(MAX_LINE_BYTES)))
    except (aiohttp.ClientError, orjson.JSONDecodeError):
        message = None
    return f"openai: HTTP {response.status}: {message or response.reason}"


def add_tool_call_delta(partial: dict[int, dict[str, str]], delta: Any) -> None:
    """Fold one streamed tool-call fragment into the calls being assembled, by index."""
    if not isinstance(delta, dict) or not isinstance(delta.get("index", 0), int):
        raise ProviderError("openai: a malformed tool call delta")
    slot = partial.setdefault(delta.get("index", 0), {"id": "", "name": "", "arguments": ""})
    if delta.get("id"):
        slot["id"] = str(delta["id"])
    function = delta.get("function") or {}
    if not isinstance(function, dict):
        raise ProviderError("openai: a malformed tool call delta")
    if function.get("name"):
        slot["name"] += str(function["name"])
    if function.get("arguments"):
        slot["arguments"] += str(function["arguments"])
