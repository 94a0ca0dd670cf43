"""Typed app state of the voice pipeline."""

from __future__ import annotations

from aiohttp import web

from server.voice.registry import AICalls

VOICE_CALLS = web.AppKey("voice_calls", AICalls)  # the live AI peers of this process
