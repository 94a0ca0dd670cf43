"""Plain WebSocket /ws/chat/{client_id}, agent chat (CONTRACT §3).

Frames in: `{type:'chat', message, agent_name, project_id, images}`, `{type:'ping'}`, and
`{type:'auth', token}` as the first frame when AUTH_SECRET is set and no `?token=` was given.
Frames out: `start`, `response {content}`, `end`, `auto_report {content}`,
`error {message}`, `pong`. This adapter validates frames and maps the core's events to
frames; the conversation itself is `server.agents.AgentChatService`.
"""

from __future__ import annotations

import logging
from typing import Any, Literal, assert_never

import orjson
from aiohttp import WSMsgType, web
from pydantic import Field

from namespaces.base import Payload, parse
from namespaces.websocket import WebSocketEndpoint
from server.agents.connections import (
    AgentEvent,
    AutoReport,
    Failure,
    ReplyDelta,
    ReplyEnded,
    ReplyStarted,
)
from server.agents.service import AGENT_PROTOCOL, AgentChatService, ChatRequest
from server.auth import Grant, websocket_token
from server.errors import InvalidField
from server.keys import AGENT_CHAT, SETTINGS
from server.outbox import Outbox
from server.ownership import Kind
from server.texts import (
    CONNECTION_REPLACED,
    NOT_A_JSON_OBJECT,
    TEXT_FRAMES_ONLY,
    invalid_field,
    unknown_type,
)

log = logging.getLogger(__name__)

REPLACED_CLOSE_CODE = 4000  # a newer connection with the same client_id took over
BAD_CLIENT_ID_CLOSE_CODE = 4400
AUTH_FRAME_TIMEOUT_SECONDS = 10.0  # how long a connection may stay silent before its auth frame
MAX_CLIENT_ID_LENGTH = 255  # the column width


class ChatFrame(Payload):
    type: Literal["chat"]
    message: str
    agent_name: str
    project_id: str
    images: list[str] = Field(default_factory=list)


class AuthFrame(Payload):
    type: Literal["auth"]
    token: str


def frame_of(event: AgentEvent) -> dict[str, Any]:
    match event:
        case ReplyStarted():
            return {"type": "start"}
        case ReplyDelta(text=text):
            return {"type": "response", "content": text}
        case ReplyEnded():
            return {"type": "end"}
        case AutoReport(content=content):
            return {"type": "auto_report", "content": content}
        case Failure(message=message):
            return error_frame(message)
        case _:
            assert_never(event)


class WebSocketLink:
    """One client connection, as the core sees it: frames go through its own bounded
    queue, so a client that does not read never holds up a broadcast (`auto_report`)."""

    def __init__(self, ws: web.WebSocketResponse, outbox: Outbox) -> None:
        self.ws = ws
        self.outbox = outbox

    async def send(self, event: AgentEvent) -> bool:
        return await self.send_frame(frame_of(event))

    async def send_frame(self, frame: dict[str, Any]) -> bool:
        return self.outbox.put(orjson.dumps(frame))

    async def close(self, code: int, error: str | None = None) -> None:
        if error is not None:
            await self.send_frame(error_frame(error))
        await self.outbox.close(code)


def error_frame(message: str) -> dict[str, Any]:
    return {"type": "error", "message": message}


class AgentChatEndpoint(WebSocketEndpoint):
    protocol = AGENT_PROTOCOL
    kind = Kind.AGENT_CLIENT
    bad_id = (invalid_field("client_id"), BAD_CLIENT_ID_CLOSE_CODE, b"")
    refused_reason = b""

    def client_id(self, request: web.Request) -> str:
        return request.match_info["client_id"]

    def valid_id(self, client_id: str) -> bool:
        return 0 < len(client_id) <= MAX_CLIENT_ID_LENGTH and client_id.isprintable()

    def error_frame(self, message: str) -> dict[str, Any]:
        return error_frame(message)

    def admits_before_upgrade(self, request: web.Request) -> bool:
        # without `?token=` (or a header) the token comes as the first frame
        return not request.app[SETTINGS].auth_secret or bool(websocket_token(request))

    async def token_after_upgrade(self, ws: web.WebSocketResponse) -> str | None:
        return await _token_from_first_frame(ws)

    async def serve(
        self, request: web.Request, ws: web.WebSocketResponse, client_id: str, grant: Grant
    ) -> None:
        service = request.app[AGENT_CHAT]
        outbox = Outbox(ws, request, request.app[SETTINGS].ws_max_unsent_bytes)
        link = WebSocketLink(ws, outbox)
        replaced = service.connect(client_id, link, request.query.getall("project_id", []))
        if isinstance(replaced, WebSocketLink):
            await replaced.close(REPLACED_CLOSE_CODE, CONNECTION_REPLACED)
        log.info("agent client connected", extra={"client": client_id, "user": grant.user})
        try:
            await _read_frames(service, link, client_id, grant)
        finally:
            service.disconnect(client_id, link)
            log.info("agent client disconnected", extra={"client": client_id})
            await outbox.aclose()

    async def finish(self, app: web.Application) -> None:
        """The answers being generated are finished before the sockets close."""
        service = app.get(AGENT_CHAT)
        if service is not None:
            await service.drain(timeout=app[SETTINGS].ai_timeout_seconds)


async def _read_frames(
    service: AgentChatService, link: WebSocketLink, client_id: str, grant: Grant
) -> None:
    async for msg in link.ws:
        if msg.type is WSMsgType.TEXT:
            await _on_text(service, link, client_id, grant, msg.data)
        elif msg.type is WSMsgType.BINARY:
            service.submit_error(client_id, TEXT_FRAMES_ONLY)
        else:  # a transport error: the socket is done
            break


async def _on_text(
    service: AgentChatService, link: WebSocketLink, client_id: str, grant: Grant, text: str
) -> None:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        service.submit_error(client_id, NOT_A_JSON_OBJECT)
        return
    frame_type = data.get("type")
    if not isinstance(frame_type, str):
        service.submit_error(client_id, invalid_field("type"))
    elif frame_type == "ping":
        await link.send_frame({"type": "pong"})  # at once: a liveness check waits for nothing
    elif frame_type == "chat":
        try:
            frame = parse(ChatFrame, data)
        except InvalidField as exc:
            service.submit_error(client_id, exc.message)
            return
        request = ChatRequest(
            frame.message, frame.agent_name, frame.project_id, tuple(frame.images)
        )
        service.submit_chat(client_id, request, grant)
    elif frame_type == "auth":
        pass  # already authenticated, or no AUTH_SECRET: nothing to do
    else:
        service.submit_error(client_id, unknown_type(frame_type))


async def _token_from_first_frame(ws: web.WebSocketResponse) -> str | None:
    """The token of a first frame `{type: 'auth', token}`; None for anything else."""
    try:
        msg = await ws.receive(timeout=AUTH_FRAME_TIMEOUT_SECONDS)
    except TimeoutError:
        return None
    if msg.type is not WSMsgType.TEXT:
        return None
    try:
        return parse(AuthFrame, orjson.loads(msg.data)).token
    except (orjson.JSONDecodeError, InvalidField):
        return None
