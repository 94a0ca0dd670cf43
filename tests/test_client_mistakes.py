"""Client mistakes are the client's (issue #17, defect 8): each is answered with a clear
error and logged without a traceback; a traceback in the log means a bug of ours."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from server.keys import SIO
from server.texts import invalid_field
from tests.conftest import LiveServer, make_settings, serve
from tests.support.processes import server_process
from tests.support.waiting import until
from tests.test_faults import FrameClient

TIMEOUT = 10.0  # an answer expected at once; this is slack on a loaded machine


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info is not None]


async def test_a_deeply_nested_room_frame_is_refused_as_invalid(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = await FrameClient.connect(f"{server.url}/v1/session/chat?sid=nested")
    try:
        for depth in (253, 300, 1000):  # inside hd/bd: beyond what can be stored
            nested = '{"x":' * depth + "1" + "}" * depth
            raw = '{"hd": {"event": "chat.message"}, "bd": {"text": "t", "extra": ' + nested + "}}"
            await client.ws.send_str(raw)
            frames = await client.until(lambda f: len(f) >= 1)
            assert frames[-1] == {
                "hd": {"event": "error"},
                "bd": {"text": invalid_field("payload")},
            }
            client.frames.clear()
        # the socket still serves
        await client.send({"hd": {"event": "chat.message"}, "bd": {"text": "안녕"}})
        frames = await client.until(lambda f: len(f) >= 1)
        assert frames[-1]["bd"]["text"] == "안녕"
    finally:
        await client.close()
    assert tracebacks(caplog) == []


# -- Engine.IO and Socket.IO, spoken raw ---------------------------------------------------

EIO = "/socket.io/?EIO=4&transport="


async def polling_session(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(f"{url}{EIO}polling") as response:
        opened = await response.text()
    assert opened.startswith("0")
    return str(json.loads(opened[1:])["sid"])


@pytest.mark.parametrize("body", [b"\xff\xfe", b"7", b"9hello", b"", b"4a\x1e8", b"b!!!"])
async def test_malformed_polling_bodies_are_refused_and_close_the_session(
    server: LiveServer, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    caplog.set_level(logging.INFO)
    async with aiohttp.ClientSession() as http:
        sid = await polling_session(http, server.url)
        url = f"{server.url}{EIO}polling&sid={sid}"
        async with http.post(url, data=body) as response:
            assert response.status == 400
        async with http.get(url) as response:  # the session is gone
            assert response.status == 400
    assert tracebacks(caplog) == []


async def test_an_oversized_polling_post_is_answered_413_and_closes_the_session(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with (
        serve(make_settings(sqlite_url, max_payload_bytes=10_000)) as live,
        aiohttp.ClientSession() as http,
    ):
        sid = await polling_session(http, live.url)
        url = f"{live.url}{EIO}polling&sid={sid}"
        async with http.post(url, data=b"4" + b"x" * 20_000, timeout=TIMEOUT) as response:
            assert response.status == 413
        async with http.get(url, timeout=TIMEOUT) as response:
            assert response.status == 400
    assert tracebacks(caplog) == []


@pytest.mark.parametrize("packet", ["7", "8", "9", "7" * 3])
async def test_unknown_engineio_packets_on_a_websocket_close_it_without_a_traceback(
    server: LiveServer, caplog: pytest.LogCaptureFixture, packet: str
) -> None:
    caplog.set_level(logging.INFO)
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{server.url}{EIO}websocket") as ws:
            opened = await ws.receive(timeout=5)
            assert str(opened.data).startswith("0")
            for _ in range(50):
                if ws.closed:
                    break
                with contextlib.suppress(ConnectionError):
                    await ws.send_str(packet)
            while (await ws.receive(timeout=5)).type is not aiohttp.WSMsgType.CLOSED:
                pass
    assert tracebacks(caplog) == []


async def test_binary_attachments_count_towards_the_payload_limit(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # a connection's later mistakes are logged at DEBUG
    async with (
        serve(make_settings(sqlite_url, max_payload_bytes=100_000)) as live,
        aiohttp.ClientSession() as http,
    ):
        sio = live.app[SIO]
        async with http.ws_connect(f"{live.url}{EIO}websocket") as ws:
            await ws.receive(timeout=5)  # OPEN
            await ws.send_str("40/chat,")
            assert str((await ws.receive(timeout=5)).data).startswith("40/chat,")
            placeholders = ",".join(f'{{"_placeholder":true,"num":{n}}}' for n in range(5))
            await ws.send_str(f'455-/chat,["typing",{placeholders}]')
            for _ in range(3):  # 3 of 5 attachments, 90 KB each: past 100 KB at the second
                await ws.send_bytes(b"\0" * 90_000)
            too_big = "attachments past MAX_PAYLOAD_BYTES"
            await until(lambda: too_big in dropped(caplog), TIMEOUT, "the packet dropped")
            assert sio._binary_packet == {}
            # more attachments than any event may carry: refused at once
            placeholders = ",".join(f'{{"_placeholder":true,"num":{n}}}' for n in range(11))
            await ws.send_str(f'4511-/chat,["typing",{placeholders}]')
            await until(lambda: "attachment count" in dropped(caplog), TIMEOUT, "the refusal")
            assert sio._binary_packet == {}
    assert tracebacks(caplog) == []


def dropped(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Why each Socket.IO packet was dropped."""
    return [
        str(getattr(r, "reason", ""))
        for r in caplog.records
        if r.getMessage() == "malformed Socket.IO packet dropped"
    ]


@pytest.mark.parametrize(
    "path", ["/v1/session/chat?sid=o1", "/ws/chat/origin-client", "/ws/session/origin-1"]
)
async def test_plain_websockets_refuse_pages_of_other_origins(sqlite_url: str, path: str) -> None:
    settings = make_settings(sqlite_url, cors_origin="https://ok.example, https://also.example")
    async with serve(settings) as live, aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(live.url + path, origin="https://evil.example")
        assert refused.value.status == 403
        for origin in ("https://also.example", None):  # allowed, and no browser at all
            async with http.ws_connect(live.url + path, origin=origin) as ws:
                assert not ws.closed


# -- HTTP itself ---------------------------------------------------------------------------

BAD_REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",  # a header too long
    b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # a URL too long
    b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS to a plain port\r\n\r\n",
]


async def raw_http(url: str, request: bytes) -> bytes:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.transport.abort()


async def test_requests_that_are_not_http_are_answered_400_without_a_traceback(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    for request in BAD_REQUESTS * 2:
        answer = await raw_http(server.url, request)
        assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
    assert tracebacks(caplog) == []


@pytest.mark.slow  # seconds of its own (a real call, a timeout, a retry schedule)
async def test_trickled_request_heads_are_cut_off(tmp_path: Path) -> None:
    async with server_process(tmp_path, HTTP_KEEPALIVE_SECONDS="1") as server:
        parts = urlsplit(server.url)
        slow = [await asyncio.open_connection(parts.hostname, parts.port) for _ in range(20)]
        try:
            for _, writer in slow:
                writer.write(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")

            async def trickle() -> None:
                for n in range(100):
                    for _, writer in slow:
                        if not writer.is_closing():
                            writer.write(b"X-%d: y\r\n" % n)
                    await asyncio.sleep(0.2)

            trickling = asyncio.create_task(trickle())
            try:
                ends = [asyncio.wait_for(reader.read(), TIMEOUT) for reader, _ in slow]
                assert all(end == b"" for end in await asyncio.gather(*ends))  # closed
            finally:
                trickling.cancel()
                await asyncio.gather(trickling, return_exceptions=True)
        finally:
            for _, writer in slow:
                writer.transport.abort()
        assert server.crashes() == []
