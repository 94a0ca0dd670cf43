"""Every protocol flooded with the malformed inputs of the red-team pass (issue #17, defect 8),
against the server as production runs it (`python -m server`): nothing is answered with a
crash, and no traceback reaches the log (a traceback there means a bug of ours)."""

from __future__ import annotations

import asyncio
import contextlib
import io
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.support.processes import server_process
from tests.test_client_mistakes import BAD_REQUESTS, EIO, raw_http

ROUNDS = 20
NESTED = '{"x":' * 300 + "1" + "}" * 300
BAD_FRAMES = [
    "not json",
    "[]",
    "null",
    '{"type": 5}',
    '{"hd": {"event": "chat.message"}, "bd": {"text": "t", "x": ' + NESTED + "}}",
    '{"type": "chat", "message": ' + NESTED + "}",
    '{"type": "request_ai_response", "data": ' + NESTED + "}",
    '{"type": "chat", "message": "\\ud800", "agent_name": "a", "project_id": "p"}',
    NESTED,
]
PLAIN_SOCKETS = ["/v1/session/chat?sid=flood", "/ws/chat/flood-client", "/ws/session/flood-1"]


async def flood_plain_socket(http: aiohttp.ClientSession, url: str) -> None:
    async with http.ws_connect(url) as ws:
        for _ in range(ROUNDS):
            for frame in BAD_FRAMES:
                await ws.send_str(frame)
            await ws.send_bytes(b"\xff\x00binary")
        await ws.send_str("not json either")
        with contextlib.suppress(TimeoutError):
            while (await ws.receive(timeout=2)).type is aiohttp.WSMsgType.TEXT:
                pass


async def flood_engineio_websocket(http: aiohttp.ClientSession, url: str) -> None:
    for packet in ["7", "8", "9", "40/nowhere,", '42/chat,["x"', "4" + NESTED, "451-[]"] * 3:
        async with http.ws_connect(f"{url}{EIO}websocket") as ws:
            await ws.receive(timeout=5)  # OPEN
            with contextlib.suppress(ConnectionError):
                await ws.send_str("40/chat,")
                await ws.send_str(packet)
                await ws.send_bytes(b"\x00" * 10)
            with contextlib.suppress(TimeoutError):
                while (await ws.receive(timeout=1)).type is not aiohttp.WSMsgType.CLOSED:
                    pass


async def flood_engineio_polling(http: aiohttp.ClientSession, url: str) -> None:
    for body in [b"\xff\xfe", b"7", b"9x", b"", b"4" + NESTED.encode(), b"b!!", b"x" * 2_000_000]:
        async with http.get(f"{url}{EIO}polling") as response:
            sid = (await response.text())[1:].split('"sid":"')[1].split('"')[0]
        data = io.BytesIO(body) if len(body) > 1_000_000 else body
        async with http.post(f"{url}{EIO}polling&sid={sid}", data=data) as response:
            assert response.status in (200, 400, 413)


async def test_a_flood_of_malformed_input_leaves_no_traceback_in_the_log(tmp_path: Path) -> None:
    async with server_process(tmp_path) as server, aiohttp.ClientSession() as http:
        ws = server.ws_url
        await asyncio.gather(
            *(flood_plain_socket(http, ws + path) for path in PLAIN_SOCKETS),
            flood_engineio_websocket(http, server.url),
            flood_engineio_polling(http, server.url),
            *(raw_http(server.url, request) for request in BAD_REQUESTS),
        )
        async with http.get(f"{server.url}/api/v1/health") as response:
            assert response.status == 200
        log = server.log()
        assert "Traceback" not in log, log[log.find("Traceback") - 300 :][:3000]
        assert server.crashes() == []
        assert urlsplit(server.url).port  # the same server served it all


pytestmark = pytest.mark.slow  # issue 17 fault tests: seconds each
