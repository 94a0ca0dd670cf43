"""The WebRTC configuration browsers get (`GET /api/v1/calls/config`)."""

from __future__ import annotations

from typing import Any

from server.config import Settings

DEFAULT_STUN_URL = "stun:stun.l.google.com:19302"
# Google's free servers, as the NestJS server listed them
DEFAULT_STUN_URLS = (
    DEFAULT_STUN_URL,
    "stun:stun1.l.google.com:19302",
    "stun:stun2.l.google.com:19302",
)


def stun_server_urls(settings: Settings) -> list[str]:
    """`STUN_SERVER_URL`: unset or the default -> Google's three; a comma-separated list ->
    those; empty -> none (a LAN or a test needs no STUN)."""
    value = settings.stun_server_url
    if value.strip() == DEFAULT_STUN_URL:
        return list(DEFAULT_STUN_URLS)
    return [url.strip() for url in value.split(",") if url.strip()]


def rtc_configuration(settings: Settings) -> dict[str, Any]:
    """An `RTCConfiguration` for `new RTCPeerConnection(...)`."""
    return {
        "iceServers": [{"urls": url} for url in stun_server_urls(settings)],
        "iceCandidatePoolSize": 10,
        "iceTransportPolicy": "all",
        "bundlePolicy": "max-bundle",
        "rtcpMuxPolicy": "require",
    }
