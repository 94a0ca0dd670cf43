"""Plain WebSocket /ws/chat/{client_id}, agent chat (CONTRACT §3)."""

from __future__ import annotations

from aiohttp import web

from server.rest.openapi import ApiRegistry


def setup_agent_chat(app: web.Application, api: ApiRegistry) -> None:
    """Add this front end's routes and background resources to the app (not built yet)."""
