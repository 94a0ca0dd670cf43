"""Plain WebSocket /v1/session/chat?sid=, multi-participant room (CONTRACT §4)."""

from __future__ import annotations

from aiohttp import web

from server.rest.openapi import ApiRegistry


def setup_room_chat(app: web.Application, api: ApiRegistry) -> None:
    """Add this front end's routes and background resources to the app (not built yet)."""
