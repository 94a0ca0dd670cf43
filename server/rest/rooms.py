"""`GET /api/chat/history/{sid}`: a room's log (the rooms of plain WebSocket
/v1/session/chat, CONTRACT §4)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from server.auth import Refused, request_grant
from server.chat import clock
from server.keys import ROOMS
from server.ownership import Kind, require_access
from server.rest.chat import ErrorMessage
from server.rest.openapi import ApiRegistry, Operation, auth_responses
from server.rooms import LogUnavailable
from server.texts import invalid_field

SID = re.compile(r"[A-Za-z0-9_-]{1,128}")  # a room id, on the socket and here
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


def add_room_routes(app: web.Application, api: ApiRegistry) -> None:
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
            query=RoomHistoryQuery,
            path_params={"sid": {"pattern": f"^{SID.pattern}$", "maxLength": 128}},
        ),
        room_history,
    )


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


class RoomHistoryQuery(BaseModel):
    limit: int = Field(default=HISTORY_DEFAULT_LIMIT, ge=1, description="capped at 1000")


def _history_limit(raw: str | None) -> int | None:
    """`?limit=`: an integer of at least 1, capped at 1000; None when it is not one."""
    if raw is None:
        return HISTORY_DEFAULT_LIMIT
    if not raw.isdecimal() or int(raw) < 1:
        return None
    return min(int(raw), HISTORY_MAX_LIMIT)
