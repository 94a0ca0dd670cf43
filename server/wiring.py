"""The composition root: every service of the app is built here, in the order it starts.

`RESOURCES` is the start-up order (aiohttp's `cleanup_ctx`: each one's set-up runs after
the ones above it, its tear-down before theirs); `wire` adds them, then the routes and
front ends in the order they match, then the shutdown of each plain WebSocket endpoint.
`server.app.create_app` owns the Socket.IO server and calls `wire`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp_cors
from aiohttp import web
from redis.asyncio import Redis

from namespaces.agent_ws import AgentChatEndpoint
from namespaces.chat import ChatNamespace
from namespaces.counseling_ws import PATH as COUNSELING_PATH
from namespaces.counseling_ws import CounselingEndpoint
from namespaces.room_ws import RoomEndpoint
from namespaces.signaling import SignalingNamespace
from server import db, korean
from server.admin.retention import retention_task
from server.admin.samples import metrics_history
from server.agents.config import AgentDirectory
from server.agents.connections import ConnectionRegistry
from server.agents.delegation import Delegations
from server.agents.history import AgentHistory, ReportStore
from server.agents.llms import AgentLLMs
from server.agents.reports import AutoReports
from server.agents.service import AgentChatService
from server.ai.factory import create_llm, create_speech
from server.ai.prompts import WELFARE_CHAT_SYSTEM_PROMPT
from server.auth import weak_secret
from server.calls.conversation import VoiceConversation
from server.calls.expiry import run_call_expiry, run_call_heartbeat
from server.calls.limits import spend_limits
from server.calls.rtc import IceConfig
from server.calls.sentiment import SentimentAnalyzer
from server.calls.service import CallService
from server.chat.history import HistoryStore
from server.chat.pending import keep_leases, pending_turns
from server.chat.reaper import run_reaper
from server.chat.service import ChatService
from server.chat.sessions import ChatSessionService
from server.config import ROOT, Settings
from server.conversation.ratelimit import make_limiter
from server.conversation.tools import Toolbox, welfare_tool
from server.counseling import (
    ConversationStore,
    CounselingService,
    counseling_llm,
    forget_idle_limits,
)
from server.keys import (
    AGENT_CHAT,
    CALLS,
    CATALOG,
    CHAT,
    COUNSELING,
    ICE,
    LLM_CLIENT,
    REDIS,
    ROOMS,
    SAFETY,
    SENTIMENT,
    SETTINGS,
    SIO,
    SPEECH,
    TOOLBOX,
    VOICE_CALLS,
    VOICE_CONVERSATION,
)
from server.metrics import add_metrics_route
from server.rest.admin import add_admin_console
from server.rest.agents import add_agent_routes
from server.rest.calls import add_call_routes
from server.rest.chat import add_chat_routes
from server.rest.openapi import ApiRegistry, add_docs_routes, answer_wrong_methods
from server.rest.privacy import SESSION_EVICTOR, add_privacy_routes
from server.rest.rooms import add_room_routes
from server.rooms import RoomService, open_room_log
from server.rooms.registry import ClusterRoomRegistry, RoomRegistry
from server.safety.detector import default_detector
from server.safety.layer import SafetyLayer
from server.safety.notifier import SafetyNotifier
from server.transport.redis_channels import RedisChannels
from server.voice.call import VoiceDeps
from server.voice.registry import AICalls
from server.voice.settings import VoiceSettings
from server.welfare import WelfareCatalog

log = logging.getLogger(__name__)

CHAT_NAMESPACE = web.AppKey("chat_namespace", ChatNamespace)  # `/chat`: the reaper tells it

PUBLIC_DIR = ROOT / "public"

Resource = Callable[[web.Application], AsyncIterator[None]]


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


async def _safety(app: web.Application) -> AsyncIterator[None]:
    """The crisis check of every protocol: the Korean analyser loaded once per process, off
    the event loop (1-3 s the first time), and the operator's webhook when configured."""
    await korean.warm_up()
    detector = await asyncio.to_thread(default_detector)
    url = app[SETTINGS].safety_webhook_url
    notifier = SafetyNotifier(url) if url else None
    if notifier is not None:
        await notifier.start()
    app[SAFETY] = SafetyLayer(detector, notifier)
    try:
        yield
    finally:
        if notifier is not None:
            await notifier.aclose()


async def _catalog(app: web.Application) -> AsyncIterator[None]:
    app[CATALOG] = await asyncio.to_thread(WelfareCatalog.load, app[SETTINGS].welfare_catalog_path)
    yield


async def _llm(app: web.Application) -> AsyncIterator[None]:
    """The configured model and the tools every assistant may call, shared by all protocols."""
    llm = create_llm(app[SETTINGS])
    app[LLM_CLIENT] = llm
    app[TOOLBOX] = Toolbox([welfare_tool(app[CATALOG])])
    try:
        yield
    finally:
        await llm.aclose()


async def _chat_core(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    llm = app[LLM_CLIENT]
    app[CHAT] = ChatService(
        sessions=ChatSessionService(settings.session_timeout_seconds),
        history=HistoryStore(),
        llm=llm,
        toolbox=app[TOOLBOX],
        limiter=make_limiter(app.get(REDIS), settings.max_ai_requests_per_minute, "chat"),
        system_prompt=WELFARE_CHAT_SYSTEM_PROMPT,
        max_message_length=settings.max_message_length,
        context_messages=settings.history_context_messages,
        ai_timeout_seconds=settings.ai_timeout_seconds,
        safety=app[SAFETY],
        pending=pending_turns(app.get(REDIS), settings.turn_lease_seconds),
        caller_limiter=make_limiter(
            app.get(REDIS), settings.max_ai_requests_per_minute, "chat-callers"
        ),
    )
    log.info("chat core ready", extra={"provider": llm.name, "services": len(app[CATALOG])})
    yield


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


async def _calls(app: web.Application) -> AsyncIterator[None]:
    """The calls core: calls and their state, speech, and a spoken turn's conversation."""
    settings = app[SETTINGS]
    llm = app[LLM_CLIENT]
    app[ICE] = IceConfig.from_settings(settings)  # refuses a bad TURN set-up at start
    speech = create_speech(settings)
    app[CALLS] = CallService()
    app[SPEECH] = speech
    # the offline model cannot judge feelings: the lexicon does
    app[SENTIMENT] = SentimentAnalyzer(None if llm.name == "local" else llm)
    app[VOICE_CONVERSATION] = VoiceConversation(
        llm=llm,
        toolbox=app[TOOLBOX],
        history=HistoryStore(),
        context_messages=settings.history_context_messages,
        ai_timeout_seconds=settings.ai_timeout_seconds,
        safety=app[SAFETY],
        sentiment=app[SENTIMENT],  # every caller utterance, stored in its metadata
    )
    log.info("calls ready", extra={"stt": speech.stt.name, "tts": speech.tts.name})
    tasks = [
        # no call dangles: calls stuck setting up FAIL (on every instance, compare-and-set)
        asyncio.create_task(
            run_call_expiry(
                app[CALLS],
                settings.call_setup_timeout_seconds,
                settings.call_expiry_interval_seconds,
                settings.call_stale_seconds,
            )
        ),
    ]
    if settings.stt_preload:
        # the offline recognizer's model loads in its own process while the server starts
        tasks.append(asyncio.create_task(speech.warm_up()))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await speech.aclose()


async def _voice(app: web.Application) -> AsyncIterator[None]:
    """The live AI peers of this process (`/signaling`), over the calls core."""
    speech = app[SPEECH]
    ai_calls = AICalls(
        VoiceDeps(
            calls=app[CALLS],
            stt=speech.stt,
            tts=speech.tts,
            conversation=app[VOICE_CONVERSATION],
            settings=VoiceSettings.from_settings(app[SETTINGS]),
        )
    )

    async def close_peers(call: Any) -> None:  # the call ended, whoever ended it
        await ai_calls.hang_up_call(call.id)

    app[CALLS].add_end_listener(close_peers)
    app[VOICE_CALLS] = ai_calls
    # the calls in progress here are alive: another instance must not end them as stale
    heartbeat = asyncio.create_task(
        run_call_heartbeat(app[CALLS], ai_calls.call_ids, app[SETTINGS].call_heartbeat_seconds)
    )
    try:
        yield
    finally:
        heartbeat.cancel()
        await asyncio.gather(heartbeat, return_exceptions=True)
        await ai_calls.close_all()


async def _agents(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    shared_toolbox = app[TOOLBOX]
    directory = await asyncio.to_thread(AgentDirectory.load, settings.agents_path)
    if weak_secret(settings.auth_secret):
        log.warning("AUTH_SECRET is shorter than 32 bytes: tokens signed with it are weak")
    registry = ConnectionRegistry()
    history = AgentHistory()
    llms = AgentLLMs(settings)
    reports = AutoReports(registry, ReportStore(), history)
    service = AgentChatService(
        directory=directory,
        llms=llms,
        shared_toolbox=shared_toolbox,
        history=history,
        registry=registry,
        reports=reports,
        delegations=Delegations(
            llms=llms,
            shared_toolbox=shared_toolbox,
            reports=reports,
            timeout_seconds=settings.ai_timeout_seconds,
            max_task_length=settings.max_message_length,
        ),
        limiter=make_limiter(app.get(REDIS), settings.max_ai_requests_per_minute, "agents"),
        max_message_length=settings.max_message_length,
        context_messages=settings.history_context_messages,
        ai_timeout_seconds=settings.ai_timeout_seconds,
        delta_flush_seconds=settings.delta_flush_ms / 1000,
        safety=app[SAFETY],
    )
    app[AGENT_CHAT] = service
    log.info("agent chat ready", extra={"agents": len(service.directory)})
    try:
        yield
    finally:
        await service.aclose()


async def _rooms(app: web.Application) -> AsyncIterator[None]:
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
            safety=app[SAFETY],
        )
        app[ROOMS] = service
        log.info("rooms ready", extra={"log": room_log.name})
        try:
            yield
        finally:
            await service.aclose()
            if bus is not None:
                await bus.aclose()


async def _counseling(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    configured = app[LLM_CLIENT]
    llm = counseling_llm(settings, configured)
    limiter = make_limiter(app.get(REDIS), settings.max_ai_requests_per_minute, "counseling")
    app[COUNSELING] = CounselingService(
        llm=llm,
        store=ConversationStore(),
        limiter=limiter,
        max_message_length=settings.max_message_length,
        ai_timeout_seconds=settings.ai_timeout_seconds,
        delta_flush_seconds=settings.delta_flush_ms / 1000,
        safety=app[SAFETY],
    )
    pruner = asyncio.create_task(forget_idle_limits(limiter))
    log.info("counseling ready", extra={"provider": llm.name})
    try:
        yield
    finally:
        pruner.cancel()
        await asyncio.gather(pruner, return_exceptions=True)
        if llm is not configured:
            await llm.aclose()


RESOURCES: list[Resource] = [
    _redis,
    _database,
    _safety,
    _catalog,
    _llm,
    _chat_core,
    _reaper,
    retention_task,  # RETENTION_DAYS (docs/operations.md)
    spend_limits,  # MAX_CALLS_PER_HOUR, MAX_PROCESS_PER_MINUTE
    metrics_history,  # the admin console's last hour
    _calls,
    _voice,
    _agents,
    _rooms,
    _counseling,
]


def wire(app: web.Application, api: ApiRegistry) -> None:
    """Every resource, route and front end but the Socket.IO server itself."""
    app.cleanup_ctx.extend(RESOURCES)
    agents, rooms, counseling = AgentChatEndpoint(), RoomEndpoint(), CounselingEndpoint()
    # in matching order
    add_chat_routes(app, api, CHAT, started=time.time())
    add_call_routes(app, api)
    app[SIO].register_namespace(SignalingNamespace(lambda: app[VOICE_CALLS], lambda: app[CALLS]))
    app.router.add_get("/ws/chat/{client_id}", agents.handle)
    add_agent_routes(app, api, AGENT_CHAT)
    app.router.add_get("/v1/session/chat", rooms.handle)
    add_room_routes(app, api)
    add_privacy_routes(app, api)  # admin: lists, export, erase (docs/operations.md)
    app[SESSION_EVICTOR] = app[CHAT_NAMESPACE]  # a deleted session's sockets are told
    add_admin_console(app, api)  # /admin
    # every path under /ws/session/ reaches it: a bad id is told in a frame, not a bare 404
    app.router.add_get(COUNSELING_PATH, counseling.handle)
    add_docs_routes(app, api)
    add_metrics_route(app)
    # after `/chat`'s own graceful shutdown (the app factory's), in this order
    _allow_cors(app, app[SETTINGS])
    answer_wrong_methods(app, api)  # after CORS: its preflight routes match first
    _add_pages(app, PUBLIC_DIR)
    app.on_shutdown.extend([agents.close_all, rooms.close_all, counseling.close_all])


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
