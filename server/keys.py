"""Typed application state: every key the composition root (`server.wiring`) sets and the
adapters and REST routes read."""

from __future__ import annotations

import socketio
from aiohttp import web
from redis.asyncio import Redis

from server.agents.service import AgentChatService
from server.ai.base import LLM
from server.ai.speech import Speech
from server.calls.conversation import VoiceConversation
from server.calls.sentiment import SentimentAnalyzer
from server.calls.service import CallService
from server.chat.service import ChatService
from server.config import Settings
from server.conversation.tools import Toolbox
from server.counseling.service import CounselingService
from server.rooms.service import RoomService
from server.safety.layer import SafetyLayer
from server.voice.registry import AICalls
from server.welfare import WelfareCatalog

SETTINGS = web.AppKey("settings", Settings)
SIO = web.AppKey("sio", socketio.AsyncServer)
REDIS = web.AppKey("redis", Redis)  # set only with REDIS_URL: state shared by every instance
CATALOG = web.AppKey("catalog", WelfareCatalog)
LLM_CLIENT = web.AppKey("llm", LLM)  # the configured provider, shared by every protocol
TOOLBOX = web.AppKey("toolbox", Toolbox)  # the tools every assistant may call (welfare search)
SAFETY = web.AppKey("safety", SafetyLayer)  # the one crisis check every protocol's core calls
CHAT = web.AppKey("chat", ChatService)  # `/chat`
CALLS = web.AppKey("calls", CallService)  # calls REST and `/signaling`
SPEECH = web.AppKey("speech", Speech)  # the configured STT and TTS
VOICE_CONVERSATION = web.AppKey("voice_conversation", VoiceConversation)
SENTIMENT = web.AppKey("sentiment", SentimentAnalyzer)
VOICE_CALLS = web.AppKey("voice_calls", AICalls)  # the live AI peers of this process
AGENT_CHAT = web.AppKey("agent_chat", AgentChatService)  # `/ws/chat/{client_id}`
ROOMS = web.AppKey("rooms", RoomService)  # `/v1/session/chat`
COUNSELING = web.AppKey("counseling", CounselingService)  # `/ws/session/{session_id}`
