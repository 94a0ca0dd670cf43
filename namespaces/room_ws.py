"""Plain WebSocket /v1/session/chat?sid=, multi-participant room (CONTRACT §4).

Every text frame is validated here, handed to the room core (`server.rooms`), and any
failure is answered to the sender alone as `{hd: {event: 'error'}, bd: {text}}`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from namespaces.websocket import WebSocketEndpoint
from server.auth import Grant
from server.errors import ChatError
from server.keys import ROOMS, SETTINGS
from server.outbox import Outbox
from server.ownership import Kind
from server.rest.rooms import SID
from server.rooms import RoomService, error_frame, parse_frame
from server.rooms.service import ROOM_PROTOCOL
from server.texts import TEMPORARY_FAILURE, invalid_field

log = logging.getLogger(__name__)


class WebSocketClient:
    """One room socket, as the room core sees it: a frame sent to it is queued (its own
    bounded queue), so a client that does not read never holds up its room."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    async def send(self, frame: Mapping[str, Any]) -> None:
        self.outbox.put(orjson.dumps(frame))  # a client gone or cut off: its handler ends

    async def close(self) -> None:
        await self.outbox.close(WSCloseCode.GOING_AWAY, b"server shutdown")


class RoomEndpoint(WebSocketEndpoint):
    protocol = ROOM_PROTOCOL
    kind = Kind.ROOM  # with AUTH_SECRET, a room is its owner's and invitees' only
    bad_id = (invalid_field("sid"), WSCloseCode.POLICY_VIOLATION, b"invalid sid")

    def client_id(self, request: web.Request) -> str:
        return request.query.get("sid", "")

    def valid_id(self, client_id: str) -> bool:
        return SID.fullmatch(client_id) is not None

    def error_frame(self, message: str) -> dict[str, Any]:
        return error_frame(message)

    def not_a_websocket(self, request: web.Request) -> web.StreamResponse | None:
        return web.json_response({"message": invalid_field("websocket")}, status=400)

    async def serve(
        self, request: web.Request, ws: web.WebSocketResponse, sid: str, grant: Grant
    ) -> None:
        rooms = request.app[ROOMS]
        settings = request.app[SETTINGS]
        max_length = settings.max_message_length
        client = WebSocketClient(Outbox(ws, request, settings.ws_max_unsent_bytes))
        await rooms.join(sid, client)
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    await _handle_frame(rooms, sid, client, message.data, max_length)
                elif message.type is WSMsgType.BINARY:
                    await client.send(error_frame(invalid_field("payload")))
        finally:
            await rooms.leave(sid, client)
            await client.outbox.aclose()

    async def finish(self, app: web.Application) -> None:
        """Replies in flight end, then the room core closes its clients."""
        await app[ROOMS].shut_down(timeout=app[SETTINGS].ai_timeout_seconds)


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
