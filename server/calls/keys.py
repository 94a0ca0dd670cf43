"""Typed app state of the calls feature (set up by `server.rest.calls.add_call_routes`)."""

from __future__ import annotations

from aiohttp import web

from server.ai.speech import Speech
from server.calls.conversation import VoiceConversation
from server.calls.rtc import IceConfig
from server.calls.sentiment import SentimentAnalyzer
from server.calls.service import CallService

CALLS = web.AppKey("calls", CallService)
SPEECH = web.AppKey("speech", Speech)  # the configured STT and TTS
VOICE_CONVERSATION = web.AppKey("voice_conversation", VoiceConversation)
SENTIMENT = web.AppKey("sentiment", SentimentAnalyzer)
ICE = web.AppKey("ice", IceConfig)  # STUN/TURN servers for browsers and the AI peer
