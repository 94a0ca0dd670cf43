"""The application factory: one aiohttp app serving Socket.IO, REST and the pages."""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from namespaces.chat import ChatNamespace
from server import db
from server.config import Settings
from server.keys import CHAT, SETTINGS, SIO
from server.logs import quiet_client_http_mistakes
from server.origin import websocket_origins
from server.rest.openapi import ApiRegistry
from server.texts import TEMPORARY_FAILURE
from server.transport import Transport, create_transport
from server.wiring import CHAT_NAMESPACE, wire

log = logging.getLogger(__name__)

TRANSPORT = web.AppKey("transport", Transport)


def create_app(settings: Settings | None = None) -> web.Application:
    settings = settings or Settings()
    quiet_client_http_mistakes()  # aiohttp's tracebacks for requests it cannot parse
    app = web.Application(
        middlewares=[websocket_origins, rest_errors], client_max_size=settings.max_payload_bytes
    )
    app[SETTINGS] = settings

    app[TRANSPORT] = transport = create_transport(settings)  # server/transport/README.md
    sio = transport.sio
    sio.attach(app)
    app[SIO] = sio
    chat_namespace = ChatNamespace(lambda: app[CHAT])
    sio.register_namespace(chat_namespace)
    app[CHAT_NAMESPACE] = chat_namespace

    app.on_shutdown.append(_graceful_shutdown)
    wire(app, ApiRegistry(title="mobok conversation server", version="0.1.0"))
    return app


async def _graceful_shutdown(app: web.Application) -> None:
    """Runs before open requests are awaited and before any cleanup_ctx teardown: answers
    being generated are finished, stored and sent, then every client is disconnected (which
    also ends pending long-polls at once)."""
    log.info("shutting down: finishing the turns in flight")
    await app[CHAT_NAMESPACE].drain(timeout=app[SETTINGS].ai_timeout_seconds)
    await app[TRANSPORT].aclose()


@web.middleware
async def rest_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except db.DB_UNAVAILABLE_ERRORS as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
            # a page path past the file system's limit: aiohttp's static route lets it escape
            raise web.HTTPNotFound() from None
        log.warning("database unavailable: %s", exc)
        return web.json_response({"message": TEMPORARY_FAILURE}, status=503)
