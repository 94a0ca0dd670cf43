"""Socket.IO `/signaling`: WebRTC voice calls with the AI as a peer (CONTRACT §2)."""

from __future__ import annotations

from aiohttp import web

from server.rest.openapi import ApiRegistry


def setup_voice(app: web.Application, api: ApiRegistry) -> None:
    """Add the `/signaling` namespace, the calls REST routes and the voice resources
    (not built yet)."""
