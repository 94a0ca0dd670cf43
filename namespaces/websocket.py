"""What the three plain WebSocket endpoints share (CONTRACT §3, §4, §5): the id check,
admission before the upgrade, the heartbeat and size limit, connection counting, sending
JSON while the socket is open, refusal frames and closing every socket on shutdown.

Each endpoint supplies its frame model, its error frame and its core call (`serve`).
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson
from aiohttp import WSCloseCode, web

from server.auth import Grant, Refused
from server.keys import SETTINGS
from server.metrics import connection_counted
from server.ownership import Kind, admit_websocket

log = logging.getLogger(__name__)


async def send_json(ws: web.WebSocketResponse, frame: Mapping[str, Any]) -> bool:
    """Send unless the client has gone (whatever it left behind is stored all the same);
    False when it was not sent."""
    if ws.closed:
        return False
    try:
        await ws.send_str(orjson.dumps(frame).decode())
    except ConnectionError:
        return False
    return True


class WebSocketEndpoint(ABC):
    """One plain WebSocket endpoint: `handle` is its route handler, `close_all` its shutdown."""

    protocol: ClassVar[str]  # the metrics label
    kind: ClassVar[Kind]  # whose the id is, with AUTH_SECRET
    # an id that fails `valid_id`: the error frame's text, the close code and reason
    bad_id: ClassVar[tuple[str, int, bytes]]
    refused_reason: ClassVar[bytes] = b"refused"  # the close reason of a refused token

    def __init__(self) -> None:
        self._sockets: set[web.WebSocketResponse] = set()

    @abstractmethod
    def client_id(self, request: web.Request) -> str:
        """The id the connection names (a path segment or `?sid=`)."""

    @abstractmethod
    def valid_id(self, client_id: str) -> bool: ...

    @abstractmethod
    def error_frame(self, message: str) -> dict[str, Any]:
        """The endpoint's frame for an error told to one client."""

    @abstractmethod
    async def serve(
        self, request: web.Request, ws: web.WebSocketResponse, client_id: str, grant: Grant
    ) -> None:
        """The admitted connection, until it ends: its frames to the core and back."""

    def not_a_websocket(self, request: web.Request) -> web.StreamResponse | None:
        """The answer to a plain HTTP request; None lets aiohttp refuse it."""
        return None

    def admits_before_upgrade(self, request: web.Request) -> bool:
        """Whether the token is known before the upgrade (else `token_after_upgrade`)."""
        return True

    async def token_after_upgrade(self, ws: web.WebSocketResponse) -> str | None:
        return None

    async def finish(self, app: web.Application) -> None:
        """On shutdown, before the sockets close: let the answers in flight end."""
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        settings = request.app[SETTINGS]
        ws = web.WebSocketResponse(
            heartbeat=settings.ws_heartbeat_seconds, max_msg_size=settings.max_payload_bytes
        )
        if not ws.can_prepare(request).ok:
            answer = self.not_a_websocket(request)
            if answer is not None:
                return answer
        client_id = self.client_id(request)
        valid = self.valid_id(client_id)
        # decided before the upgrade when it can be: a client that sees its socket open is
        # served already (a browser cannot read an HTTP error body, but it can read a frame)
        admitted: Grant | Refused | None = None
        if valid and self.admits_before_upgrade(request):
            admitted = await admit_websocket(request, self.kind, client_id)
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            with connection_counted(self.protocol):
                if not valid:
                    await self.refuse(ws, *self.bad_id)
                    return ws
                if admitted is None:  # the token comes after the upgrade
                    token = await self.token_after_upgrade(ws)
                    admitted = await admit_websocket(request, self.kind, client_id, token)
                if isinstance(admitted, Refused):
                    await self.refuse(ws, admitted.message, admitted.close_code)
                    return ws
                await self.serve(request, ws, client_id, admitted)
        finally:
            self._sockets.discard(ws)
        return ws

    async def refuse(
        self, ws: web.WebSocketResponse, message: str, code: int, reason: bytes | None = None
    ) -> None:
        await send_json(ws, self.error_frame(message))
        await ws.close(code=code, message=self.refused_reason if reason is None else reason)

    async def close_all(self, app: web.Application) -> None:
        """Shutdown: the answers in flight end, then every socket, admitted or not, is closed
        (1001) so none holds the server up."""
        await self.finish(app)
        await asyncio.gather(
            *(
                ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
                for ws in list(self._sockets)
            ),
            return_exceptions=True,
        )
