"""Plain WebSocket upgrades from a page of another site are refused when `CORS_ORIGIN` is an
allowlist.

A browser lets any page open a websocket to any server, sending the page's `Origin`; CORS
does not apply to websockets, so the server has to look itself. Socket.IO checks its own
(`cors_allowed_origins`); this middleware does it for the plain WebSocket endpoints. A
client that sends no `Origin` is not a browser page, and is let through (its token, when
AUTH_SECRET is set, still decides).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from server.keys import SETTINGS
from server.texts import invalid_field

log = logging.getLogger(__name__)

SOCKET_IO_PATH = "/socket.io/"  # checked by python-engineio itself


@web.middleware
async def websocket_origins(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    origin = request.headers.get(hdrs.ORIGIN)
    if (
        origin is not None
        and request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
        and not request.path.startswith(SOCKET_IO_PATH)
    ):
        allowed = request.app[SETTINGS].cors_origins
        if allowed != "*" and origin not in allowed:
            log.info("websocket from a foreign origin refused", extra={"origin": origin[:100]})
            return web.json_response({"message": invalid_field("origin")}, status=403)
    return await handler(request)
