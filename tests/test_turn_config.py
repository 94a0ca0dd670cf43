"""TURN in `GET /api/v1/calls/config` and for the AI peer: long-term and REST credentials,
the relay-only policy, and what is refused. The relayed call itself: tests/test_turn_relay.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import jwt
import pytest
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from server.calls.rtc import AI_PEER_USER, IceConfig
from server.voice.outbound import SpeakerTrack
from server.voice.peer import AIPeer, ice_servers
from tests.conftest import make_settings, serve
from tests.test_calls_rest import api, call_json

TURN = "turn:turn.example.test:3478"
TURNS = "turns:turn.example.test:5349?transport=tcp"
SECRET = "north-wind-secret"


async def config_of(sqlite_url: str, headers: dict[str, str] | None = None, **settings: Any) -> Any:
    async with serve(make_settings(sqlite_url, **{"stun_server_url": "", **settings})) as live:
        async with api(live) as http:
            status, answer = await call_json(
                http, "GET", "/api/v1/calls/config", headers=headers or {}
            )
    assert status == 200, answer
    return answer["data"]["config"]


def signed(username: str, secret: str = SECRET) -> str:
    return base64.b64encode(
        hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    ).decode()


async def test_long_term_credentials_are_listed(sqlite_url: str) -> None:
    config = await config_of(
        sqlite_url,
        turn_server_url=f"{TURN}, {TURNS}",
        turn_username="mobok",
        turn_credential="s3cret",
    )
    assert config["iceServers"] == [
        {"urls": [TURN, TURNS], "username": "mobok", "credential": "s3cret"}
    ]
    assert config["iceTransportPolicy"] == "all"


async def test_rest_credentials_are_signed_per_request_and_expire(sqlite_url: str) -> None:
    before = int(time.time())
    config = await config_of(
        sqlite_url,
        turn_server_url=TURN,
        turn_secret=SECRET,
        turn_ttl_seconds=600,
        rtc_ice_transport_policy="relay",
    )
    (server,) = config["iceServers"]
    expiry, user = server["username"].split(":")
    assert before + 600 <= int(expiry) <= int(time.time()) + 600
    assert user == "caller"
    # what coturn's use-auth-secret checks
    assert server["credential"] == signed(server["username"])
    assert config["iceTransportPolicy"] == "relay"


async def test_with_auth_secret_only_a_signed_in_caller_gets_turn(sqlite_url: str) -> None:
    settings = {
        "turn_server_url": TURN,
        "turn_secret": SECRET,
        "auth_secret": "auth-secret-for-the-turn-config-tests-0123456789",
        "stun_server_url": "stun:stun.example.test:3478",
    }
    anonymous = await config_of(sqlite_url, **settings)
    assert anonymous["iceServers"] == [{"urls": "stun:stun.example.test:3478"}]
    token = jwt.encode(
        {"sub": "alice"}, "auth-secret-for-the-turn-config-tests-0123456789", algorithm="HS256"
    )
    config = await config_of(sqlite_url, {"Authorization": f"Bearer {token}"}, **settings)
    turn = config["iceServers"][1]
    assert turn["username"].endswith(":alice")
    assert turn["credential"] == signed(turn["username"])


@pytest.mark.parametrize(
    "settings",
    [
        {"turn_server_url": "stun:not-turn.test:3478", "turn_secret": SECRET},
        {"turn_server_url": TURN},  # no credentials at all
    ],
)
async def test_a_bad_turn_setup_is_refused_at_start(sqlite_url: str, settings: Any) -> None:
    with pytest.raises(ValueError, match="TURN_SERVER_URL"):
        async with serve(make_settings(sqlite_url, **settings)):
            pass


async def test_the_ai_peer_uses_turn_and_the_relay_policy(sqlite_url: str) -> None:
    ice = IceConfig.from_settings(
        make_settings(
            sqlite_url,
            stun_server_url="stun:stun.example.test:3478",
            turn_server_url=TURN,
            turn_secret=SECRET,
            rtc_ice_transport_policy="relay",
        )
    )
    stun, turn = ice_servers(ice, loopback=False)
    assert stun.urls == ["stun:stun.example.test:3478"]
    assert turn.urls == [TURN]
    assert turn.username is not None and turn.username.endswith(f":{AI_PEER_USER}")
    assert turn.credential == signed(turn.username)
    assert ice_servers(ice, loopback=True) == []
    peer = AIPeer(SpeakerTrack(), loopback=False, ice=ice)
    try:
        configuration = peer._pc._RTCPeerConnection__configuration  # type: ignore[attr-defined]
        assert configuration.iceTransportPolicy == RTCIceTransportPolicy.RELAY
    finally:
        await peer.close()
