"""Plain WebSocket /ws/session/{session_id}, emotion-aware counseling stream (CONTRACT §5)."""

from __future__ import annotations

from aiohttp import web

from server.rest.openapi import ApiRegistry


def setup_counseling(app: web.Application, api: ApiRegistry) -> None:
    """Add this front end's routes and background resources to the app (not built yet)."""
