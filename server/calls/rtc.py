"""ICE servers for both ends of a call: the browser's `RTCConfiguration`
(`GET /api/v1/calls/config`) and the AI peer's.

STUN from `STUN_SERVER_URL`; TURN from `TURN_SERVER_URL` with either long-term credentials
(`TURN_USERNAME` + `TURN_CREDENTIAL`) or coturn's `use-auth-secret` (the TURN REST API):
`TURN_SECRET` signs short-lived credentials per request, username `<unix expiry>:<user>`,
credential base64(HMAC-SHA1(secret, username)), valid `TURN_TTL_SECONDS`.
`RTC_ICE_TRANSPORT_POLICY=relay` makes both ends use relayed candidates only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

from server.config import Settings

DEFAULT_STUN_URL = "stun:stun.l.google.com:19302"
# Google's free servers, as the NestJS server listed them
DEFAULT_STUN_URLS = (
    DEFAULT_STUN_URL,
    "stun:stun1.l.google.com:19302",
    "stun:stun2.l.google.com:19302",
)
AI_PEER_USER = "ai-server"  # the AI peer's user in TURN REST credentials


def stun_server_urls(settings: Settings) -> list[str]:
    """`STUN_SERVER_URL`: unset or the default -> Google's three; a comma-separated list ->
    those; empty -> none (a LAN or a test needs no STUN)."""
    value = settings.stun_server_url
    if value.strip() == DEFAULT_STUN_URL:
        return list(DEFAULT_STUN_URLS)
    return _urls(value)


def _urls(value: str) -> list[str]:
    return [url.strip() for url in value.split(",") if url.strip()]


@dataclass(frozen=True, slots=True)
class TurnCredentials:
    username: str
    credential: str


@dataclass(frozen=True, slots=True)
class IceConfig:
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_username: str | None = None
    turn_credential: str | None = None
    turn_secret: str | None = None
    turn_ttl_seconds: int = 12 * 3600
    relay_only: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> IceConfig:
        turn_urls = _urls(settings.turn_server_url)
        bad = [u for u in turn_urls if not u.startswith(("turn:", "turns:"))]
        if bad:
            raise ValueError(f"TURN_SERVER_URL: not a turn: or turns: URL: {bad}")
        if turn_urls and not settings.turn_secret and not settings.turn_username:
            raise ValueError("TURN_SERVER_URL needs TURN_SECRET or TURN_USERNAME/TURN_CREDENTIAL")
        return cls(
            stun_urls=tuple(stun_server_urls(settings)),
            turn_urls=tuple(turn_urls),
            turn_username=settings.turn_username,
            turn_credential=settings.turn_credential,
            turn_secret=settings.turn_secret,
            turn_ttl_seconds=settings.turn_ttl_seconds,
            relay_only=settings.rtc_ice_transport_policy == "relay",
        )

    def credentials(self, user: str, now: float | None = None) -> TurnCredentials:
        """`user`'s TURN credentials: signed for this request with `TURN_SECRET`, else the
        configured long-term pair."""
        if self.turn_secret:
            expiry = int(time.time() if now is None else now) + self.turn_ttl_seconds
            username = f"{expiry}:{user}"
            mac = hmac.new(self.turn_secret.encode(), username.encode(), hashlib.sha1).digest()
            return TurnCredentials(username, base64.b64encode(mac).decode())
        return TurnCredentials(self.turn_username or "", self.turn_credential or "")

    def ice_servers(self, user: str, *, with_turn: bool = True) -> list[dict[str, Any]]:
        """`RTCIceServer` dictionaries: each STUN URL, then the TURN URLs with credentials."""
        servers: list[dict[str, Any]] = [{"urls": url} for url in self.stun_urls]
        if self.turn_urls and with_turn:
            creds = self.credentials(user)
            servers.append(
                {
                    "urls": list(self.turn_urls),
                    "username": creds.username,
                    "credential": creds.credential,
                }
            )
        return servers


def rtc_configuration(ice: IceConfig, user: str, *, with_turn: bool = True) -> dict[str, Any]:
    """An `RTCConfiguration` for `new RTCPeerConnection(...)`."""
    return {
        "iceServers": ice.ice_servers(user, with_turn=with_turn),
        "iceCandidatePoolSize": 10,
        "iceTransportPolicy": "relay" if ice.relay_only else "all",
        "bundlePolicy": "max-bundle",
        "rtcpMuxPolicy": "require",
    }
