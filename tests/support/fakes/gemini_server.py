"""A local stand-in for the Gemini API (generativelanguage), speaking its real wire format.

`POST /v1beta/models/{model}:streamGenerateContent?alt=sse` streams `GenerateContentResponse`
server-sent events (`:generateContent` answers the same in one JSON). With tools offered and
a user turn last it calls `search_welfare_services`; with a function response last it answers
from that result in the §1.1 numbered format; otherwise it echoes `답변: <text>`.

It is as strict as the real API where a client is most likely to go wrong: the conversation
must open with a user turn, roles must alternate, and a replayed function call must carry the
`thoughtSignature` it was given (Gemini 3 answers 400 without it). Every request is recorded.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# opaque to clients, base64 on the wire like the real thing
THOUGHT_SIGNATURE = "ZmFrZS10aG91Z2h0LXNpZ25hdHVyZQ=="
TEXT_CHUNK_CHARS = 9


@dataclass(frozen=True)
class RecordedRequest:
    path: str  # with the query string
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any]


@dataclass
class FakeGemini:
    requests: list[RecordedRequest] = field(default_factory=list)
    fail_status: int | None = None  # answer every request with this HTTP status
    hang: bool = False  # never answer
    url: str = ""  # the base URL to configure (GEMINI_BASE_URL)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["model_method"].partition(":")
        body = await request.json()
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.requests.append(RecordedRequest(request.path_qs, headers, body))
        if self.hang:
            await asyncio.sleep(3600)
        if self.fail_status is not None:
            return _error(self.fail_status, "fake failure")
        if method not in ("streamGenerateContent", "generateContent"):
            return _error(404, f"unknown method {method!r}")
        if "x-goog-api-key" not in headers:
            return _error(403, "Method doesn't allow unregistered callers")
        problem = conversation_problem(body.get("contents") or [])
        if problem:
            return _error(400, problem)
        parts = reply_parts(body)
        if method == "generateContent":
            return web.json_response(_response(model, parts, finished=True))
        if request.query.get("alt") != "sse":
            return _error(400, "this fake streams server-sent events only (?alt=sse)")
        return await _stream(request, model, parts)


def conversation_problem(contents: list[dict[str, Any]]) -> str | None:
    if not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    if contents[0].get("role") != "user":
        return "Please ensure that multiturn requests alternate between user and model."
    for earlier, later in itertools.pairwise(contents):
        if earlier.get("role") == later.get("role"):
            return "Please ensure that multiturn requests alternate between user and model."
    for content in contents:
        if content.get("role") == "model":
            for part in content.get("parts") or []:
                if "functionCall" in part and part.get("thoughtSignature") != THOUGHT_SIGNATURE:
                    return "Function call is missing a thought_signature in functionCall parts."
    return None


def reply_parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    last = body["contents"][-1]["parts"]
    responses = [p["functionResponse"] for p in last if "functionResponse" in p]
    if responses:
        result = responses[-1].get("response", {}).get("result")
        return [{"text": _numbered(result)}]
    user_text = "\n".join(p["text"] for p in last if "text" in p)
    if body.get("tools"):
        call = {"name": "search_welfare_services", "args": {"query": user_text}}
        return [{"functionCall": call, "thoughtSignature": THOUGHT_SIGNATURE}]
    return [{"text": f"답변: {user_text}"}]


def _numbered(result: Any) -> str:
    if not isinstance(result, list) or not result:
        return "검색 결과가 없습니다."
    lines = [
        f"{i}. {s['name']}\n    - 담당: {s['department']}\n    - 연락처: {s['contact']}"
        for i, s in enumerate(result, 1)
    ]
    return "검색 결과입니다.\n\n" + "\n\n".join(lines)


def _response(model: str, parts: list[dict[str, Any]], *, finished: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    response: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
    if finished:
        candidate["finishReason"] = "STOP"
        response["usageMetadata"] = {
            "promptTokenCount": 42,
            "candidatesTokenCount": 7,
            "totalTokenCount": 49,
        }
    response["responseId"] = "fake-response-1"
    return response


async def _stream(
    request: web.Request, model: str, parts: list[dict[str, Any]]
) -> web.StreamResponse:
    # Text arrives in several events; a function call arrives whole, in one event.
    events: list[list[dict[str, Any]]] = []
    for part in parts:
        text = part.get("text")
        if text is None:
            events.append([part])
        else:
            step = TEXT_CHUNK_CHARS
            events.extend([{"text": text[i : i + step]}] for i in range(0, len(text), step))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for number, event_parts in enumerate(events, 1):
        payload = _response(model, event_parts, finished=number == len(events))
        await response.write(f"data: {json.dumps(payload, ensure_ascii=False)}\r\n\r\n".encode())
    await response.write_eof()
    return response


def _error(status: int, message: str) -> web.Response:
    names = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}
    body = {"error": {"code": status, "message": message, "status": names.get(status, "INTERNAL")}}
    return web.json_response(body, status=status)


@asynccontextmanager
async def running_fake_gemini() -> AsyncIterator[FakeGemini]:
    fake = FakeGemini()
    app = web.Application()
    app.router.add_post("/v1beta/models/{model_method}", fake.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield fake
    finally:
        await runner.cleanup()
