"""A local stand-in for the OpenAI HTTP API, speaking its real wire format.

`POST /v1/chat/completions` streams `chat.completion.chunk` server-sent events (or answers a
plain completion). With tools offered and a user message last, it calls
`search_welfare_services` (its arguments split across chunks, as OpenAI does); with a tool
result last, it answers from that result. Every request body is kept for assertions.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class FakeOpenAI:
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_status: int | None = None  # answer every request with this HTTP status
    hang: bool = False  # never answer
    delay: float = 0.0
    url: str = ""

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        if self.hang:
            await asyncio.sleep(3600)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_status is not None:
            return web.json_response(
                {"error": {"message": "fake failure", "type": "server_error"}},
                status=self.fail_status,
            )
        messages = body["messages"]
        last = messages[-1]
        if body.get("tools") and last["role"] == "user":
            arguments = json.dumps({"query": last["content"], "limit": 3}, ensure_ascii=False)
            return await self._stream(request, body, tool_arguments=arguments)
        if last["role"] == "tool":
            services = json.loads(last["content"])
            lines = [
                f"{i}. {s['name']}\n    - 담당: {s['department']}\n    - 연락처: {s['contact']}"
                for i, s in enumerate(services, 1)
            ]
            text = "검색 결과입니다.\n\n" + "\n\n".join(lines)
        else:
            text = f"답변: {last['content']}"
        return await self._stream(request, body, text=text)

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        *,
        text: str = "",
        tool_arguments: str | None = None,
    ) -> web.StreamResponse:
        model = body.get("model", "gpt-4o")
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        chunks: list[dict[str, Any]] = []
        if tool_arguments is not None:
            half = len(tool_arguments) // 2
            chunks.append(
                {
                    "index": 0,
                    "id": "call_fake1",
                    "type": "function",
                    "function": {
                        "name": "search_welfare_services",
                        "arguments": tool_arguments[:half],
                    },
                }
            )
            chunks.append({"index": 0, "function": {"arguments": tool_arguments[half:]}})
            deltas = [{"role": "assistant", "tool_calls": [c]} for c in chunks]
            finish = "tool_calls"
        else:
            pieces = [text[i : i + 7] for i in range(0, len(text), 7)]
            deltas = [{"role": "assistant", "content": ""}] + [{"content": p} for p in pieces]
            finish = "stop"
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            return web.json_response(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for delta in deltas:
            event = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            await response.write(f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode())
        final = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
        await response.write(f"data: {json.dumps(final)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


@asynccontextmanager
async def running_fake_openai() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.chat_completions)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    try:
        yield fake
    finally:
        await runner.cleanup()
