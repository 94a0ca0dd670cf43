"""The application factory: one aiohttp app serving Socket.IO, REST and the pages."""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable

import socketio
from aiohttp import web

from namespaces.chat import ChatNamespace
from server import db
from server.config import Settings
from server.fanout import LocalManager, RoomChannelRedisManager
from server.keys import CHAT, SETTINGS, SIO
from server.rest.openapi import ApiRegistry
from server.sio_packets import ContractSocketServer
from server.sio_tuning import OrjsonModule, PingWheel, use_lean_websockets, use_small_queues
from server.texts import TEMPORARY_FAILURE
from server.wiring import CHAT_NAMESPACE, wire

log = logging.getLogger(__name__)

PINGS = web.AppKey("engineio_pings", PingWheel)


def create_app(settings: Settings | None = None) -> web.Application:
    settings = settings or Settings()
    app = web.Application(middlewares=[rest_errors], client_max_size=settings.max_payload_bytes)
    app[SETTINGS] = settings

    sio = ContractSocketServer(
        async_mode="aiohttp",
        client_manager=_client_manager(settings),
        cors_allowed_origins=settings.cors_origins,
        transports=settings.transports,
        max_http_buffer_size=settings.max_payload_bytes,
        logger=False,
        engineio_logger=False,
        json=OrjsonModule,
    )
    app[PINGS] = use_lean_websockets(sio.eio)
    use_small_queues(sio.eio)
    sio.attach(app)
    app[SIO] = sio
    chat_namespace = ChatNamespace(lambda: app[CHAT])
    sio.register_namespace(chat_namespace)
    app[CHAT_NAMESPACE] = chat_namespace

    app.on_shutdown.append(_graceful_shutdown)
    wire(app, ApiRegistry(title="mobok conversation server", version="0.1.0"))
    return app


def _client_manager(settings: Settings) -> socketio.AsyncManager:
    """Many instances share rooms and emits through Redis; else this process only."""
    if not settings.redis_url:
        return LocalManager()
    return RoomChannelRedisManager(settings.redis_url)


async def _graceful_shutdown(app: web.Application) -> None:
    """Runs before open requests are awaited and before any cleanup_ctx teardown: answers
    being generated are finished, stored and sent, then every client is disconnected (which
    also ends pending long-polls at once)."""
    log.info("shutting down: finishing the turns in flight")
    await app[CHAT_NAMESPACE].drain(timeout=app[SETTINGS].ai_timeout_seconds)
    sio = app[SIO]
    log.info("shutting down: disconnecting clients", extra={"clients": len(sio.eio.sockets)})
    # `sio.shutdown()` only stops background tasks, and aiohttp would wait for every open
    # websocket until its ping timeout (45 s). A Socket.IO disconnect per namespace tells
    # each client why; python-engineio's close then only queues a CLOSE packet, so a `None`
    # is queued after it: its writer takes that as "closed" (as its own reader does at the
    # end of a connection), closes the websocket and ends a pending long-poll at once.
    for namespace in list(sio.manager.get_namespaces()):
        for sid, _ in list(sio.manager.get_participants(namespace, None)):
            await sio.disconnect(sid, namespace=namespace)
    for socket in list(sio.eio.sockets.values()):
        # not `eio.disconnect()`: it waits for each queue to drain, forever for a polling
        # client that is already gone
        await socket.close(wait=False)
        socket.queue.put_nowait(None)
    await sio.shutdown()
    await app[PINGS].aclose()
    await sio.manager.aclose()


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
