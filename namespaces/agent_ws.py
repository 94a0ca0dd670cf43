"""Plain WebSocket /ws/chat/{client_id}, agent chat (CONTRACT §3).

Frames in: `{type:'chat', message, agent_name, project_id, images}`, `{type:'ping'}`, and
`{type:'auth', token}` as the first frame when AUTH_SECRET is set and no `?token=` was given.
Frames out: `start`, `response {content}`, `end`, `auto_report {content}`,
`error {message}`, `pong`. This adapter validates frames and maps the core's events to
frames; the conversation itself is `server.agents.AgentChatService`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal, assert_never

import orjson
from aiohttp import WSCloseCode, WSMsgType, web
from pydantic import Field

from namespaces.base import Payload, parse
from server.agents import AgentChatService, ChatRequest, build_agent_chat
from server.agents.connections import (
    AgentEvent,
    AutoReport,
    Failure,
    ReplyDelta,
    ReplyEnded,
    ReplyStarted,
)
from server.agents.rest import add_agent_routes
from server.agents.service import AGENT_PROTOCOL
from server.agents.texts import (
    CONNECTION_REPLACED,
    NOT_A_JSON_OBJECT,
    TEXT_FRAMES_ONLY,
    unknown_type,
)
from server.auth import Grant, Refused, websocket_token
from server.errors import InvalidField, invalid_field
from server.keys import REDIS, SETTINGS, TOOLBOX
from server.metrics import CONNECTIONS
from server.outbox import Outbox
from server.ownership import Kind, admit_websocket
from server.rest.openapi import ApiRegistry

log = logging.getLogger(__name__)

AGENT_CHAT = web.AppKey("agent_chat", AgentChatService)

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
            return {"type": "error", "message": message}
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
            await self.send_frame({"type": "error", "message": error})
        await self.outbox.close(code)


class AgentChatEndpoint:
    def __init__(self) -> None:
        self._links: set[WebSocketLink] = set()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        settings = request.app[SETTINGS]
        service = request.app[AGENT_CHAT]
        client_id = request.match_info["client_id"]
        ws = web.WebSocketResponse(
            heartbeat=settings.ws_heartbeat_seconds, max_msg_size=settings.max_payload_bytes
        )
        # decided before the upgrade when it can be (no token, or `?token=`): a client that
        # sees its socket open is connected already
        admitted = None
        if _valid_client_id(client_id) and (not settings.auth_secret or websocket_token(request)):
            admitted = await admit_websocket(request, Kind.AGENT_CLIENT, client_id)
        await ws.prepare(request)
        link = WebSocketLink(ws, Outbox(ws, request, settings.ws_max_unsent_bytes))
        self._links.add(link)
        CONNECTIONS.labels(AGENT_PROTOCOL).inc()
        try:
            if not _valid_client_id(client_id):
                await link.close(BAD_CLIENT_ID_CLOSE_CODE, invalid_field("client_id"))
                return ws
            if admitted is None:  # the token comes as the first frame
                token = await _token_from_first_frame(ws)
                admitted = await admit_websocket(request, Kind.AGENT_CLIENT, client_id, token)
            if isinstance(admitted, Refused):
                await link.close(admitted.close_code, admitted.message)
                return ws
            grant = admitted
            replaced = service.connect(client_id, link, request.query.getall("project_id", []))
            if isinstance(replaced, WebSocketLink):
                await replaced.close(REPLACED_CLOSE_CODE, CONNECTION_REPLACED)
            log.info("agent client connected", extra={"client": client_id, "user": grant.user})
            try:
                await _read_frames(service, link, client_id, grant)
            finally:
                service.disconnect(client_id, link)
                log.info("agent client disconnected", extra={"client": client_id})
            return ws
        finally:
            self._links.discard(link)
            CONNECTIONS.labels(AGENT_PROTOCOL).dec()
            await link.outbox.aclose()

    async def close_all(self) -> None:
        """Shutdown: every socket, authenticated or not, so none holds the server up."""
        await asyncio.gather(
            *(
                link.outbox.close(WSCloseCode.GOING_AWAY, b"server shutdown")
                for link in list(self._links)
            )
        )


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
    try:
        msg = await ws.receive(timeout=AUTH_FRAME_TIMEOUT_SECONDS)
    except TimeoutError:
        return None
    if msg.type is not WSMsgType.TEXT:
        return None
    try:
        data = orjson.loads(msg.data)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict) and data.get("type") == "auth":
        token = data.get("token")
        return token if isinstance(token, str) else None
    return None


def _valid_client_id(client_id: str) -> bool:
    return 0 < len(client_id) <= MAX_CLIENT_ID_LENGTH and client_id.isprintable()


AGENT_ENDPOINT = web.AppKey("agent_chat_endpoint", AgentChatEndpoint)


def setup_agent_chat(app: web.Application, api: ApiRegistry) -> None:
    """The `/ws/chat/{client_id}` endpoint, the broadcast route, and the service's life."""
    endpoint = AgentChatEndpoint()
    app[AGENT_ENDPOINT] = endpoint
    app.router.add_get("/ws/chat/{client_id}", endpoint.handle)
    add_agent_routes(app, api, AGENT_CHAT)
    app.cleanup_ctx.append(_agent_chat_service)
    app.on_shutdown.append(_close_agent_sockets)


async def _agent_chat_service(app: web.Application) -> AsyncIterator[None]:
    # runs after the chat core's context: the shared toolbox exists by now
    service = await build_agent_chat(app[SETTINGS], app[TOOLBOX], app.get(REDIS))
    app[AGENT_CHAT] = service
    log.info("agent chat ready", extra={"agents": len(service.directory)})
    try:
        yield
    finally:
        await service.aclose()


async def _close_agent_sockets(app: web.Application) -> None:
    """Finish the answers being generated, then close every socket (1001) so shutdown does
    not wait for clients to leave."""
    service = app.get(AGENT_CHAT)
    if service is not None:
        await service.drain(timeout=app[SETTINGS].ai_timeout_seconds)
    await app[AGENT_ENDPOINT].close_all()
