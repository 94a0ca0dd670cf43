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
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMessage, WSMsgType, web

from namespaces.base import Payload, parse
from namespaces.websocket import WebSocketEndpoint, send_json
from server.auth import Grant
from server.chat.clock import to_ms
from server.counseling import CounselingRequest, CounselingService, Emotion, as_emotion
from server.counseling.service import COUNSELING_PROTOCOL
from server.errors import ChatError, InvalidField
from server.keys import COUNSELING, SETTINGS
from server.ownership import Kind
from server.texts import COUNSELING_INVALID_SESSION, TEMPORARY_FAILURE

log = logging.getLogger(__name__)

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


class Envelope(Payload):
    type: str


class RequestData(Payload):
    message: str | None = None  # the source server read a missing message as an empty one
    emotion: Any = None  # lenient: an unknown emotion is no emotion
    timestamp: Any = None  # informative: a bad one never costs the user a reply


class RequestFrame(Payload):
    data: RequestData


class CounselingEndpoint(WebSocketEndpoint):
    protocol = COUNSELING_PROTOCOL
    kind = Kind.COUNSELING  # with AUTH_SECRET, a session is the first user's who used it
    bad_id = (COUNSELING_INVALID_SESSION, WSCloseCode.POLICY_VIOLATION, b"invalid session id")

    def __init__(self) -> None:
        super().__init__()
        self._replies: set[asyncio.Task[None]] = set()  # replies being streamed

    def client_id(self, request: web.Request) -> str:
        return request.match_info["session_id"]

    def valid_id(self, client_id: str) -> bool:
        return SESSION_ID.fullmatch(client_id) is not None

    def error_frame(self, message: str) -> dict[str, Any]:
        return _error(message)

    async def serve(
        self, request: web.Request, ws: web.WebSocketResponse, session_id: str, grant: Grant
    ) -> None:
        await _serve(ws, request.app[COUNSELING], session_id, self._replies)

    async def finish(self, app: web.Application) -> None:
        """A reply being streamed is finished, stored and sent; nothing more is read."""
        if self._replies:
            await asyncio.wait(set(self._replies), timeout=app[SETTINGS].ai_timeout_seconds)


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
            await send_json(ws, _error(work.message))
        else:
            reply = asyncio.create_task(_stream_reply(ws, service, work))
            replies.add(reply)  # shutdown waits for it
            reply.add_done_callback(replies.discard)
            await reply


async def _stream_reply(
    ws: web.WebSocketResponse, service: CounselingService, request: CounselingRequest
) -> None:
    async def send_chunk(chunk: str) -> None:
        await send_json(ws, {"type": "ai_stream_chunk", "data": {"chunk": chunk}})

    await send_json(ws, {"type": "ai_stream_begin", "data": {}})
    try:
        await service.reply(request, send_chunk)
    except ChatError as exc:
        await send_json(ws, _error(exc.message))
        return
    except Exception:  # the one boundary: a bug must not end the socket or the worker
        log.exception("counseling turn crashed", extra={"session": request.session_id})
        await send_json(ws, _error(TEMPORARY_FAILURE))
        return
    await send_json(ws, {"type": "ai_stream_complete", "data": {}})


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
        raw = orjson.loads(msg.data)
    except orjson.JSONDecodeError:
        raise InvalidField("payload") from None
    try:
        if parse(Envelope, raw).type != REQUEST:
            return None  # emotion_update, vad_metrics, ...: the client's own business
        data = parse(RequestFrame, raw).data
    except InvalidField as exc:  # the contract names a field, not its path (`message`)
        raise InvalidField(exc.field.rpartition(".")[2]) from None
    emotion = data.emotion
    return (
        data.message or "",
        as_emotion(emotion if isinstance(emotion, str) else None),
        _client_timestamp(data.timestamp),
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
