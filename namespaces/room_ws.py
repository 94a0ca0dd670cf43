"""Plain WebSocket /v1/session/chat?sid=, multi-participant room (CONTRACT §4).

Every text frame is validated here, handed to the room core (`server.rooms`), and any
failure is answered to the sender alone as `{hd: {event: 'error'}, bd: {text}}`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web
from pydantic import BaseModel

from server.auth import Grant, Refused, request_grant
from server.chat import clock
from server.chat.ratelimit import make_limiter
from server.errors import TEMPORARY_FAILURE, ChatError, invalid_field
from server.keys import LLM_CLIENT, REDIS, SETTINGS, TOOLBOX
from server.metrics import CONNECTIONS
from server.outbox import Outbox
from server.ownership import Kind, admit_websocket, require_access
from server.rest.chat import ErrorMessage
from server.rest.openapi import ApiRegistry, Operation, auth_responses
from server.rooms import LogUnavailable, RoomService, error_frame, open_room_log, parse_frame
from server.rooms.registry import ClusterRoomRegistry, RoomRegistry
from server.rooms.service import ROOM_PROTOCOL
from server.transport.redis_channels import RedisChannels

log = logging.getLogger(__name__)

ROOMS = web.AppKey("rooms", RoomService)
SID = re.compile(r"[A-Za-z0-9_-]{1,128}")
HISTORY_DEFAULT_LIMIT = 200
HISTORY_MAX_LIMIT = 1000


class RoomEntryOut(BaseModel):
    id: str
    participant: str
    body: dict[str, Any]
    createdAt: str


class RoomHistory(BaseModel):
    """A room's log, oldest first (the last 200 entries unless `?limit=`, at most 1000)."""

    sessionId: str
    messages: list[RoomEntryOut]


def setup_room_chat(app: web.Application, api: ApiRegistry) -> None:
    """Add the room socket, its history route and the room core to the app."""
    app.cleanup_ctx.append(_room_service)
    app.on_shutdown.append(_shut_down_rooms)
    app.router.add_get("/v1/session/chat", room_socket)
    api.add(
        app,
        Operation(
            "GET",
            "/api/chat/history/{sid}",
            "chat",
            "A room's log (plain WebSocket /v1/session/chat)",
            {
                200: RoomHistory,
                400: ErrorMessage,
                503: ErrorMessage,
                **auth_responses(app, ErrorMessage),
            },
        ),
        room_history,
    )


async def _room_service(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    # with Redis, a room's clients may be connected to different instances
    bus = RedisChannels(settings.redis_url) if settings.redis_url else None
    async with open_room_log(settings.redis_url) as room_log:
        service = RoomService(
            registry=ClusterRoomRegistry(bus) if bus else RoomRegistry(),
            room_log=room_log,
            llm=app[LLM_CLIENT],
            toolbox=app[TOOLBOX],
            limiter=make_limiter(app.get(REDIS), settings.max_ai_requests_per_minute, "rooms"),
            context_messages=settings.history_context_messages,
            ai_timeout_seconds=settings.ai_timeout_seconds,
            delta_flush_seconds=settings.delta_flush_ms / 1000,
        )
        app[ROOMS] = service
        log.info("rooms ready", extra={"log": room_log.name})
        try:
            yield
        finally:
            await service.aclose()
            if bus is not None:
                await bus.aclose()


async def _shut_down_rooms(app: web.Application) -> None:
    await app[ROOMS].shut_down(timeout=app[SETTINGS].ai_timeout_seconds)


class WebSocketClient:
    """One room socket, as the room core sees it: a frame sent to it is queued (its own
    bounded queue), so a client that does not read never holds up its room."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    async def send(self, frame: Mapping[str, Any]) -> None:
        self.outbox.put(orjson.dumps(frame))  # a client gone or cut off: its handler ends

    async def close(self) -> None:
        await self.outbox.close(WSCloseCode.GOING_AWAY, b"server shutdown")


async def room_socket(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    ws = web.WebSocketResponse(
        heartbeat=settings.ws_heartbeat_seconds, max_msg_size=settings.max_payload_bytes
    )
    if not ws.can_prepare(request).ok:
        return web.json_response({"message": invalid_field("websocket")}, status=400)
    sid = request.query.get("sid", "")
    # with AUTH_SECRET: `?token=`, and a room is its owner's and invitees' only; decided
    # before the upgrade, so a client that sees its socket open is in the room already
    admitted = await admit_websocket(request, Kind.ROOM, sid) if SID.fullmatch(sid) else None
    await ws.prepare(request)
    client = WebSocketClient(Outbox(ws, request, settings.ws_max_unsent_bytes))
    try:
        await _serve(request, ws, sid, admitted, client)
    finally:
        await client.outbox.aclose()
    return ws


async def _serve(
    request: web.Request,
    ws: web.WebSocketResponse,
    sid: str,
    admitted: Grant | Refused | None,
    client: WebSocketClient,
) -> None:
    settings = request.app[SETTINGS]
    if not SID.fullmatch(sid):
        # a browser cannot read an HTTP error body, but it can read this frame and the code
        await client.send(error_frame(invalid_field("sid")))
        await client.outbox.close(WSCloseCode.POLICY_VIOLATION, b"invalid sid")
        return
    if isinstance(admitted, Refused):
        await client.send(error_frame(admitted.message))
        await client.outbox.close(admitted.close_code, b"refused")
        return

    rooms = request.app[ROOMS]
    await rooms.join(sid, client)
    CONNECTIONS.labels(ROOM_PROTOCOL).inc()
    try:
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await _handle_frame(rooms, sid, client, message.data, settings.max_message_length)
            elif message.type == WSMsgType.BINARY:
                await client.send(error_frame(invalid_field("payload")))
    finally:
        CONNECTIONS.labels(ROOM_PROTOCOL).dec()
        await rooms.leave(sid, client)


async def _handle_frame(
    rooms: RoomService, sid: str, client: WebSocketClient, raw: str, max_length: int
) -> None:
    try:
        await rooms.post(sid, parse_frame(raw, max_length), client)
    except ChatError as exc:
        await client.send(error_frame(exc.message))
    except Exception:  # the socket keeps serving whatever went wrong
        log.exception("room frame failed", extra={"sid": sid})
        await client.send(error_frame(TEMPORARY_FAILURE))


async def room_history(request: web.Request) -> web.Response:
    sid = request.match_info["sid"]
    if not SID.fullmatch(sid):
        return web.json_response({"message": invalid_field("sid")}, status=400)
    limit = _history_limit(request.query.get("limit"))
    if limit is None:
        return web.json_response({"message": invalid_field("limit")}, status=400)
    try:  # the same rule as the room's socket, with `Authorization: Bearer`
        await require_access(Kind.ROOM, sid, request_grant(request))
    except Refused as exc:
        return web.json_response({"message": exc.message}, status=exc.status)
    try:
        entries = await request.app[ROOMS].history(sid, limit)
    except LogUnavailable as exc:
        return web.json_response({"message": exc.message}, status=503)
    messages = [
        {
            "id": e.id,
            "participant": e.participant,
            "body": e.body,
            "createdAt": clock.to_iso(e.created_at),
        }
        for e in entries
    ]
    return web.json_response({"sessionId": sid, "messages": messages})


def _history_limit(raw: str | None) -> int | None:
    """`?limit=`: an integer of at least 1, capped at 1000; None when it is not one."""
    if raw is None:
        return HISTORY_DEFAULT_LIMIT
    if not raw.isdecimal() or int(raw) < 1:
        return None
    return min(int(raw), HISTORY_MAX_LIMIT)
