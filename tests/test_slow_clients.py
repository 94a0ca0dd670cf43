"""A client that never reads what it is sent (issue #17, defect 2): it must not hold up the
others. Each broadcast goes to a bounded queue per client; past `WS_MAX_UNSENT_BYTES` the
slow reader is cut off, and the others get every frame, without waiting for it."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import aiohttp
import pytest

from server.keys import AGENT_CHAT, ROOMS
from tests.conftest import LiveServer, make_settings, serve
from tests.support.waiting import until
from tests.test_agent_ws import SECRET, token
from tests.test_faults import FrameClient

UNSENT_LIMIT = 256 * 1024
BIG_TEXT = "가" * 20_000  # 60 KB of UTF-8 per frame
FRAMES = 120  # 7 MB in all: more than the kernel's buffers and the limit hold


@asynccontextmanager
async def non_reader(live: LiveServer, path: str) -> AsyncIterator[None]:
    """A websocket that completes its handshake, then never reads again (a small receive
    buffer, so the kernel does not read for it for long)."""
    parts = urlsplit(live.url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    try:
        yield
    finally:
        writer.transport.abort()


async def test_a_room_client_that_never_reads_does_not_hold_up_the_room(sqlite_url: str) -> None:
    async with serve(
        make_settings(sqlite_url, ws_max_unsent_bytes=UNSENT_LIMIT, max_message_length=20_000)
    ) as live:
        registry = live.app[ROOMS].registry
        async with non_reader(live, "/v1/session/chat?sid=r1"):
            await until(lambda: len(registry.clients("r1")) == 1, what="the non-reader joined")
            reader = await FrameClient.connect(f"{live.url}/v1/session/chat?sid=r1")
            try:
                started = time.monotonic()
                for _ in range(FRAMES):
                    await reader.send({"hd": {"event": "chat.message"}, "bd": {"text": BIG_TEXT}})
                # every frame reaches the reading client, in order, the slow one notwithstanding
                await until(lambda: len(reader.frames) >= FRAMES, 60, "every frame")
                print(
                    f"\nnon-reading client in the room: {FRAMES} frames of 60 KB reached the "
                    f"reader in {time.monotonic() - started:.2f} s"
                )
                assert all(f["bd"]["text"] == BIG_TEXT for f in reader.frames)
                # and the slow one was let go: the room has the reader alone
                await until(lambda: len(registry.clients("r1")) == 1, what="the cut-off")
                assert [type(c).__name__ for c in registry.clients("r1")] == ["WebSocketClient"]
            finally:
                await reader.close()


async def test_an_agent_client_that_never_reads_does_not_hold_up_a_broadcast(
    sqlite_url: str,
) -> None:
    settings = make_settings(sqlite_url, auth_secret=SECRET, ws_max_unsent_bytes=UNSENT_LIMIT)
    async with serve(settings) as live, aiohttp.ClientSession() as http:
        service = live.app[AGENT_CHAT]
        async with non_reader(live, f"/ws/chat/slow?token={token()}"):
            await until(lambda: service.registry.clients() == ["slow"], what="slow connected")
            reader = await FrameClient.connect(f"{live.url}/ws/chat/fast?token={token()}")
            try:
                await until(lambda: len(service.registry.clients()) == 2, what="fast connected")
                admin = {"Authorization": f"Bearer {token(role='admin')}"}
                url = f"{live.url}/api/v1/agents/broadcast"
                for n in range(2 * FRAMES):
                    body = {"content": f"{n} " + "가" * 9_990}
                    async with http.post(url, json=body, headers=admin) as response:
                        assert response.status == 200
                await until(lambda: len(reader.frames) >= 2 * FRAMES, 60, "every report")
                sent = [str(n) for n in range(2 * FRAMES)]
                assert [f["content"].split()[0] for f in reader.frames] == sent
                await until(lambda: service.registry.clients() == ["fast"], what="the cut-off")
            finally:
                await reader.close()


pytestmark = pytest.mark.slow  # issue 17 fault tests: seconds each
