"""The application factory: one aiohttp app serving Socket.IO, REST and the pages."""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp_cors
from aiohttp import web
from redis.asyncio import Redis

from namespaces.agent_ws import setup_agent_chat
from namespaces.chat import ChatNamespace
from namespaces.counseling_ws import setup_counseling
from namespaces.room_ws import setup_room_chat
from namespaces.signaling import setup_voice
from server import db
from server.ai.factory import create_llm
from server.ai.prompts import WELFARE_CHAT_SYSTEM_PROMPT
from server.chat.history import HistoryStore
from server.chat.pending import keep_leases, pending_turns
from server.chat.ratelimit import make_limiter
from server.chat.reaper import run_reaper
from server.chat.service import ChatService
from server.chat.sessions import ChatSessionService
from server.chat.tools import Toolbox, welfare_tool
from server.config import ROOT, Settings
from server.errors import TEMPORARY_FAILURE
from server.keys import CATALOG, CHAT, LLM_CLIENT, REDIS, SETTINGS, SIO, TOOLBOX
from server.logs import quiet_client_http_mistakes
from server.metrics import add_metrics_route
from server.origin import websocket_origins
from server.rest.chat import add_chat_routes
from server.rest.openapi import ApiRegistry, add_docs_routes
from server.transport import Transport, create_transport
from server.welfare import WelfareCatalog

log = logging.getLogger(__name__)

PUBLIC_DIR = ROOT / "public"

CHAT_NAMESPACE = web.AppKey("chat_namespace", ChatNamespace)
TRANSPORT = web.AppKey("transport", Transport)


def create_app(settings: Settings | None = None) -> web.Application:
    settings = settings or Settings()
    quiet_client_http_mistakes()
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

    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_chat_core)
    app.cleanup_ctx.append(_reaper)
    app.on_shutdown.append(_graceful_shutdown)

    api = ApiRegistry(title="mobok conversation server", version="0.1.0")
    add_chat_routes(app, api, CHAT, started=time.time())
    setup_voice(app, api)  # `/signaling`, the calls REST API and the voice pipeline (§2)
    # the plain WebSocket front ends (CONTRACT §3, §4, §5), each over the same core
    setup_agent_chat(app, api)
    setup_room_chat(app, api)
    setup_counseling(app, api)
    add_docs_routes(app, api)
    add_metrics_route(app)
    _allow_cors(app, settings)
    _add_pages(app, PUBLIC_DIR)
    return app


async def _redis(app: web.Application) -> AsyncIterator[None]:
    url = app[SETTINGS].redis_url
    if not url:
        yield
        return
    client = Redis.from_url(url)
    app[REDIS] = client
    try:
        yield
    finally:
        await client.aclose()


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with db.database(settings.database_url, settings.db_query_timeout_seconds):
        yield


async def _chat_core(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    catalog = await asyncio.to_thread(WelfareCatalog.load, settings.welfare_catalog_path)
    app[CATALOG] = catalog
    llm = create_llm(settings)
    toolbox = Toolbox([welfare_tool(catalog)])
    app[LLM_CLIENT] = llm
    app[TOOLBOX] = toolbox
    app[CHAT] = ChatService(
        sessions=ChatSessionService(settings.session_timeout_seconds),
        history=HistoryStore(),
        llm=llm,
        toolbox=toolbox,
        limiter=make_limiter(app.get(REDIS), settings.max_ai_requests_per_minute, "chat"),
        system_prompt=WELFARE_CHAT_SYSTEM_PROMPT,
        max_message_length=settings.max_message_length,
        context_messages=settings.history_context_messages,
        ai_timeout_seconds=settings.ai_timeout_seconds,
        pending=pending_turns(app.get(REDIS), settings.turn_lease_seconds),
        caller_limiter=make_limiter(
            app.get(REDIS), settings.max_ai_requests_per_minute, "chat-callers"
        ),
    )
    log.info("chat core ready", extra={"provider": llm.name, "services": len(catalog)})
    try:
        yield
    finally:
        await llm.aclose()


async def _reaper(app: web.Application) -> AsyncIterator[None]:
    """Idle sessions, and (with Redis) the answers orphaned by a dead instance."""
    tasks = [
        asyncio.create_task(
            run_reaper(app[CHAT], app[CHAT_NAMESPACE], app[SETTINGS].reap_interval_seconds)
        ),
        asyncio.create_task(keep_leases(app[CHAT].pending, app[CHAT_NAMESPACE].take_over)),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


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


def _allow_cors(app: web.Application, settings: Settings) -> None:
    origins = settings.cors_origins
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=False, expose_headers="*", allow_headers="*", allow_methods="*"
    )
    cors = aiohttp_cors.setup(
        app,
        defaults={"*": options} if origins == "*" else {o: options for o in origins},
    )
    for route in list(app.router.routes()):
        if str(route.resource.canonical if route.resource else "").startswith("/api/"):
            cors.add(route)


def _add_pages(app: web.Application, public: Path) -> None:
    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(public / "index.html")

    app.router.add_get("/", index)
    app.router.add_static("/", str(public), follow_symlinks=False)
