"""The CORS allowlist (`CORS_ORIGIN`) and the largest accepted payload (`MAX_PAYLOAD_BYTES`)
on every protocol: refused cleanly, and the server keeps serving the next client."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import socketio

from models import ChatMessage
from server.texts import invalid_field
from tests.conftest import LiveServer, make_settings, serve
from tests.support.sio import RecordingClient, joined_chat_client
from tests.support.waiting import until

ALLOWED = "https://a.example"
ALSO_ALLOWED = "https://b.example"
DISALLOWED = "https://evil.example"
LIMIT = 4096  # MAX_PAYLOAD_BYTES in these tests
TOO_BIG = "가" * LIMIT  # 3 bytes a character in UTF-8: three times the limit


@pytest.fixture
async def allowlisted(sqlite_url: str) -> AsyncIterator[LiveServer]:
    settings = make_settings(sqlite_url, cors_origin=f"{ALLOWED}, {ALSO_ALLOWED}")
    async with serve(settings) as live:
        yield live


@pytest.fixture
async def limited(database_url: str) -> AsyncIterator[LiveServer]:
    async with serve(make_settings(database_url, max_payload_bytes=LIMIT)) as live:
        yield live


# -- CORS ------------------------------------------------------------------------------------


async def test_rest_answers_cors_to_allowed_origins_only(allowlisted: LiveServer) -> None:
    async with aiohttp.ClientSession() as http:
        for origin in (ALLOWED, ALSO_ALLOWED):
            async with http.get(
                allowlisted.url + "/api/v1/health", headers={"Origin": origin}
            ) as r:
                assert r.status == 200
                assert r.headers["Access-Control-Allow-Origin"] == origin
        async with http.get(
            allowlisted.url + "/api/v1/health", headers={"Origin": DISALLOWED}
        ) as r:
            assert "Access-Control-Allow-Origin" not in r.headers

        def preflight(origin: str) -> dict[str, str]:
            return {
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            }

        async with http.options(allowlisted.url + "/api/v1/calls", headers=preflight(ALLOWED)) as r:
            assert r.status == 200
            assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
            assert "POST" in r.headers["Access-Control-Allow-Methods"]
        url = allowlisted.url + "/api/v1/calls"
        async with http.options(url, headers=preflight(DISALLOWED)) as r:
            assert r.status == 403
            assert "Access-Control-Allow-Origin" not in r.headers
        # the allowlist changes no answer, only who may read it
        body = {"callerNumber": "01012345678"}
        async with http.post(url, json=body, headers={"Origin": ALLOWED}) as r:
            assert r.status == 201 and r.headers["Access-Control-Allow-Origin"] == ALLOWED


async def test_socketio_handshake_answers_allowed_origins_only(allowlisted: LiveServer) -> None:
    handshake = allowlisted.url + "/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(handshake, headers={"Origin": ALLOWED}) as r:
            assert r.status == 200
            assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
            assert (await r.text()).startswith("0{")  # the Engine.IO open packet
        async with http.get(handshake, headers={"Origin": DISALLOWED}) as r:
            assert r.status == 400
            assert "Access-Control-Allow-Origin" not in r.headers
        preflight = {"Origin": ALLOWED, "Access-Control-Request-Method": "GET"}
        async with http.options(handshake, headers=preflight) as r:
            assert r.headers["Access-Control-Allow-Origin"] == ALLOWED


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_socketio_client_from_a_disallowed_origin_is_refused(
    allowlisted: LiveServer, transport: str
) -> None:
    refused = RecordingClient()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.connect(allowlisted.url, transport=transport, headers={"Origin": DISALLOWED})
    await refused.sio.eio.disconnect()  # closes the HTTP session the failed attempt opened
    allowed = RecordingClient()
    await allowed.connect(allowlisted.url, transport=transport, headers={"Origin": ALLOWED})
    assert (await allowed.call("join-chat", {"userId": "u1"}))["userId"] == "u1"
    await allowed.close()


# -- payload size ----------------------------------------------------------------------------


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> bool:
    return not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def disconnected(client: RecordingClient) -> None:
    """Wait until the server has dropped the client (it must, within 10 s)."""
    await until(lambda: not client.sio.connected, 10, "the server dropping the client")


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_an_oversized_socketio_event_drops_only_its_connection(
    limited: LiveServer, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    bystander, bystander_session = await joined_chat_client(limited.url, "bystander")
    sender = RecordingClient()
    await sender.connect(limited.url, transport=transport)
    session_id = (await sender.call("join-chat", {"userId": "sender"}))["sessionId"]
    await sender.emit("send-message", {"sessionId": session_id, "message": TOO_BIG})
    await disconnected(sender)
    await sender.close()
    assert await ChatMessage.filter(sender="user").count() == 0
    # the others are served as before, and so is a new client
    sent = await bystander.call("send-message", {"sessionId": bystander_session, "message": "안녕"})
    assert sent["content"] == "안녕"
    newcomer = RecordingClient()
    await newcomer.connect(limited.url, transport=transport)
    assert (await newcomer.call("join-chat", {"userId": "newcomer"}))["userId"] == "newcomer"
    for client in (bystander, newcomer):
        await client.close()
    assert no_errors_logged(caplog)


async def test_an_oversized_rest_body_is_refused(
    limited: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = limited.url + "/api/v1/calls"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"callerNumber": "01012345678", "pad": TOO_BIG}) as r:
            assert r.status == 413
            assert await r.json() == {
                "success": False,
                "error": {"message": invalid_field("body")},
            }
        async with http.post(url, json={"callerNumber": "01012345678"}) as r:
            assert r.status == 201
    assert no_errors_logged(caplog)


def ws(live: LiveServer, path: str) -> str:
    return live.url.replace("http://", "ws://") + path


async def answered(live: LiveServer, path: str, frame: dict[str, Any]) -> dict[str, Any]:
    """The first frame a fresh connection gets in reply to `frame`."""
    async with aiohttp.ClientSession() as http, http.ws_connect(ws(live, path)) as socket:
        await socket.send_json(frame)
        reply: dict[str, Any] = await socket.receive_json(timeout=10)
        return reply


ENDPOINTS = [
    ("/ws/chat/client-1", {"type": "ping"}, {"type": "pong"}),
    (
        "/v1/session/chat?sid=room1",
        {"hd": {"event": "chat.message", "role": "A"}, "bd": {"text": "hi"}},
        None,
    ),
    (
        "/ws/session/counsel1",
        {"type": "request_ai_response", "data": {"message": "안녕", "emotion": None}},
        {"type": "ai_stream_begin", "data": {}},
    ),
]


@pytest.mark.parametrize(("path", "frame", "reply"), ENDPOINTS)
async def test_an_oversized_websocket_frame_closes_with_1009(
    limited: LiveServer,
    path: str,
    frame: dict[str, Any],
    reply: dict[str, Any] | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(ws(limited, path)) as socket:
        await socket.send_str(TOO_BIG)
        closing = await socket.receive(timeout=10)
        assert closing.type is aiohttp.WSMsgType.CLOSE
        assert socket.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    got = await answered(limited, path, frame)
    if reply is None:  # the room echoes the stored frame
        assert got["bd"] == {"text": "hi"} and got["hd"]["role"] == "A"
    else:
        assert got == reply
    assert no_errors_logged(caplog)
