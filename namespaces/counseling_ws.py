"""Plain WebSocket /ws/session/{session_id}, emotion-aware counseling stream (CONTRACT §5).

In: `{type: 'request_ai_response', data: {message, emotion, timestamp}}`; any other `type`
is accepted and ignored. Out, per request and in the order requested: `ai_stream_begin`,
`ai_stream_chunk {chunk}`..., `ai_stream_complete`, or `ai_stream_error {error}` instead.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import weakref
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMessage, WSMsgType, web

from server.auth import Refused
from server.chat.clock import to_ms
from server.chat.ratelimit import make_limiter
from server.counseling import (
    ConversationStore,
    CounselingRequest,
    CounselingService,
    Emotion,
    as_emotion,
    counseling_llm,
    forget_idle_limits,
)
from server.counseling.service import COUNSELING_PROTOCOL
from server.errors import COUNSELING_INVALID_SESSION, TEMPORARY_FAILURE, ChatError, InvalidField
from server.keys import LLM_CLIENT, REDIS, SETTINGS
from server.metrics import CONNECTIONS
from server.ownership import Kind, admit_websocket
from server.rest.openapi import ApiRegistry
from server.safety.setup import SAFETY

log = logging.getLogger(__name__)

COUNSELING = web.AppKey("counseling", CounselingService)

# Every path under /ws/session/ reaches the handler, so a bad id is refused with a frame
# the client can read rather than a bare 404.
PATH = "/ws/session/{session_id:.*}"
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
REQUEST = "request_ai_response"
# Requests read ahead of the one being answered; past this, reading pauses (TCP
# backpressure) instead of queueing a flood in memory.
BACKLOG = 16
MAX_TIMESTAMP = 2**63 - 1  # BIGINT

Work = CounselingRequest | ChatError


def setup_counseling(app: web.Application, api: ApiRegistry) -> None:
    """Add the counseling endpoint, its core and its shutdown to the app."""
    endpoint = CounselingEndpoint()
    app.router.add_get(PATH, endpoint.handle)
    app.cleanup_ctx.append(_counseling_core)
    app.on_shutdown.append(endpoint.close_all)


async def _counseling_core(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    configured = app[LLM_CLIENT]
    llm = counseling_llm(settings, configured)
    limiter = make_limiter(app.get(REDIS), settings.max_ai_requests_per_minute, "counseling")
    app[COUNSELING] = CounselingService(
        llm=llm,
        store=ConversationStore(),
        limiter=limiter,
        max_message_length=settings.max_message_length,
        ai_timeout_seconds=settings.ai_timeout_seconds,
        delta_flush_seconds=settings.delta_flush_ms / 1000,
        safety=app[SAFETY],
    )
    pruner = asyncio.create_task(forget_idle_limits(limiter))
    log.info("counseling ready", extra={"provider": llm.name})
    try:
        yield
    finally:
        pruner.cancel()
        await asyncio.gather(pruner, return_exceptions=True)
        if llm is not configured:
            await llm.aclose()


class CounselingEndpoint:
    def __init__(self) -> None:
        self._sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        self._replies: set[asyncio.Task[None]] = set()  # replies being streamed

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        settings = request.app[SETTINGS]
        ws = web.WebSocketResponse(
            heartbeat=settings.ws_heartbeat_seconds, max_msg_size=settings.max_payload_bytes
        )
        session_id = request.match_info["session_id"]
        # with AUTH_SECRET: `?token=`, and a session is the first user's who used it; decided
        # before the upgrade, so a client that sees its socket open is served already
        admitted = None
        if SESSION_ID.fullmatch(session_id):
            admitted = await admit_websocket(request, Kind.COUNSELING, session_id)
        await ws.prepare(request)
        if not SESSION_ID.fullmatch(session_id):
            await _send(ws, _error(COUNSELING_INVALID_SESSION))
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"invalid session id")
            return ws
        if isinstance(admitted, Refused):
            await _send(ws, _error(admitted.message))
            await ws.close(code=admitted.close_code, message=b"refused")
            return ws
        self._sockets.add(ws)
        CONNECTIONS.labels(COUNSELING_PROTOCOL).inc()
        try:
            await _serve(ws, request.app[COUNSELING], session_id, self._replies)
        finally:
            self._sockets.discard(ws)
            CONNECTIONS.labels(COUNSELING_PROTOCOL).dec()
        return ws

    async def close_all(self, app: web.Application) -> None:
        """On shutdown: a reply being streamed is finished, stored and sent; nothing more
        is read."""
        if self._replies:
            await asyncio.wait(set(self._replies), timeout=app[SETTINGS].ai_timeout_seconds)
        await asyncio.gather(
            *(
                ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
                for ws in self._sockets
            ),
            return_exceptions=True,
        )


async def _serve(
    ws: web.WebSocketResponse,
    service: CounselingService,
    session_id: str,
    replies: set[asyncio.Task[None]],
) -> None:
    """Read frames as they come (pings, disconnects) while one worker answers them in order."""
    queue: asyncio.Queue[Work | None] = asyncio.Queue(maxsize=BACKLOG)
    worker = asyncio.create_task(_answer_in_order(ws, service, queue, replies))
    try:
        async for msg in ws:
            if msg.type is WSMsgType.ERROR:
                break
            work = await _read(msg, service, session_id)
            if work is not None:
                await queue.put(work)
        await queue.put(None)
        await worker
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)


async def _answer_in_order(
    ws: web.WebSocketResponse,
    service: CounselingService,
    queue: asyncio.Queue[Work | None],
    replies: set[asyncio.Task[None]],
) -> None:
    while (work := await queue.get()) is not None:
        if ws.closed:
            continue  # the client has gone: requests it left queued are dropped
        if isinstance(work, ChatError):
            await _send(ws, _error(work.message))
        else:
            reply = asyncio.create_task(_stream_reply(ws, service, work))
            replies.add(reply)  # shutdown waits for it
            reply.add_done_callback(replies.discard)
            await reply


async def _stream_reply(
    ws: web.WebSocketResponse, service: CounselingService, request: CounselingRequest
) -> None:
    async def send_chunk(chunk: str) -> None:
        await _send(ws, {"type": "ai_stream_chunk", "data": {"chunk": chunk}})

    await _send(ws, {"type": "ai_stream_begin", "data": {}})
    try:
        await service.reply(request, send_chunk)
    except ChatError as exc:
        await _send(ws, _error(exc.message))
        return
    except Exception:  # the one boundary: a bug must not end the socket or the worker
        log.exception("counseling turn crashed", extra={"session": request.session_id})
        await _send(ws, _error(TEMPORARY_FAILURE))
        return
    await _send(ws, {"type": "ai_stream_complete", "data": {}})


async def _read(msg: WSMessage, service: CounselingService, session_id: str) -> Work | None:
    """A validated request, the error to answer instead, or None for a frame to ignore."""
    try:
        fields = _parse_request(msg)
        if fields is None:
            return None
        return await service.accept(session_id, *fields)
    except ChatError as exc:
        return exc


def _parse_request(msg: WSMessage) -> tuple[str, Emotion | None, int | None] | None:
    if msg.type is not WSMsgType.TEXT:
        raise InvalidField("payload")
    try:
        frame = orjson.loads(msg.data)
    except orjson.JSONDecodeError:
        raise InvalidField("payload") from None
    if not isinstance(frame, dict):
        raise InvalidField("payload")
    kind = frame.get("type")
    if not isinstance(kind, str):
        raise InvalidField("type")
    if kind != REQUEST:
        return None  # emotion_update, vad_metrics, ...: the client's own business
    data = frame.get("data")
    if not isinstance(data, dict):
        raise InvalidField("data")
    message = data.get("message")
    if message is None:
        message = ""  # the source server read a missing message as an empty one
    if not isinstance(message, str):
        raise InvalidField("message")
    emotion = data.get("emotion")
    return (
        message,
        as_emotion(emotion if isinstance(emotion, str) else None),
        _client_timestamp(data.get("timestamp")),
    )


def _client_timestamp(value: object) -> int | None:
    """Epoch milliseconds (a number, a string of digits, or an ISO-8601 string); None for
    anything else: the timestamp is informative, a bad one never costs the user a reply."""
    ms: int | None = None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        ms = value
    elif isinstance(value, float) and math.isfinite(value):
        ms = int(value)
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 20:
        ms = int(value)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        ms = to_ms(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return ms if ms is not None and 0 <= ms <= MAX_TIMESTAMP else None


def _error(message: str) -> dict[str, Any]:
    return {"type": "ai_stream_error", "data": {"error": message}}


async def _send(ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
    """Send unless the client has gone (a reply it left behind is still stored)."""
    if ws.closed:
        return
    try:
        await ws.send_str(orjson.dumps(frame).decode())
    except ConnectionError:
        pass
