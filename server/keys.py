"""Typed application state shared by the app factory, the adapters and the REST routes."""

from __future__ import annotations

import socketio
from aiohttp import web
from redis.asyncio import Redis

from server.ai.base import LLM
from server.chat.service import ChatService
from server.conversation.tools import Toolbox
from server.config import Settings
from server.welfare import WelfareCatalog

SETTINGS = web.AppKey("settings", Settings)
SIO = web.AppKey("sio", socketio.AsyncServer)
CATALOG = web.AppKey("catalog", WelfareCatalog)
LLM_CLIENT = web.AppKey("llm", LLM)  # the configured provider, shared by every protocol
TOOLBOX = web.AppKey("toolbox", Toolbox)  # the tools every assistant may call (welfare search)
CHAT = web.AppKey("chat", ChatService)
REDIS = web.AppKey("redis", Redis)  # set only with REDIS_URL: state shared by every instance
