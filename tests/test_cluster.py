"""Many instances (issue #5): two server processes over one MariaDB and one Redis.

Clients of one session on different instances see each other's messages and typing, the rate
limit counts across instances, a §4 room spans instances, and a client whose instance is
killed with SIGKILL resumes on the other one without losing or repeating a message.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.keys import CHAT as CHAT_KEY
from server.texts import RATE_LIMITED
from tests.conftest import fresh_database, make_settings, require, serve
from tests.support.processes import ServerProcess, server_process
from tests.support.sio import RecordingClient
from tests.support.waiting import until

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RATE_LIMIT = 6


async def _subscribers(channel: str, wanted: int) -> bool:
    """Whether `wanted` Redis connections subscribe to `channel` (PUBSUB NUMSUB: read only)."""
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        [(_, count)] = await client.pubsub_numsub(channel)
        return int(count) == wanted
    finally:
        await client.aclose()


async def _redis_reachable() -> bool:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        await client.aclose()


@asynccontextmanager
async def two_instances(
    tmp_path: Path, **overrides: str
) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    require(await _redis_reachable(), f"Redis not reachable at {REDIS_URL}")
    async with fresh_database("mysql", tmp_path) as database_url, AsyncExitStack() as stack:
        env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "SOCKETIO_TRANSPORTS": "websocket",
            "MAX_AI_REQUESTS_PER_MINUTE": str(RATE_LIMIT),
            **overrides,
        }
        # one after the other: the first creates the tables
        first = await stack.enter_async_context(server_process(tmp_path, **env))
        second = await stack.enter_async_context(server_process(tmp_path, **env))
        yield first, second
        for server in (first, second):
            if server.running:
                assert server.crashes() == [], server.log()[-3000:]


@asynccontextmanager
async def chat_client(server: ServerProcess) -> AsyncIterator[RecordingClient]:
    client = RecordingClient()
    await client.connect(server.url)
    try:
        yield client
    finally:
        await client.sio.eio.disconnect(abort=True)


async def turn(client: RecordingClient, session_id: str, text: str) -> tuple[Any, Any]:
    """Send a message; its `message-sent` and the `ai-message` that answers it."""
    sent = await client.call("send-message", {"sessionId": session_id, "message": text})
    assert "error" not in sent, sent
    echoed = await client.next("message-sent")
    reply = await client.next("ai-message", timeout=15)
    assert echoed == sent
    return sent, reply


async def test_two_instances_share_a_session(tmp_path: Path) -> None:
    async with (
        two_instances(tmp_path) as (a, b),
        chat_client(a) as on_a,
        chat_client(b) as on_b,
    ):
        joined = await on_a.call("join-chat", {"userId": "u1"})
        session_id = joined["sessionId"]
        await on_a.next("ai-message")  # the greeting of a new session
        again = await on_b.call("join-chat", {"userId": "u1", "sessionId": session_id})
        assert again["sessionId"] == session_id
        history = await on_b.next("chat-history")
        assert [m["sender"] for m in history["messages"]] == ["assistant"]

        # a message sent on A reaches the tab on B, echo and answer, in order
        sent, reply = await turn(on_a, session_id, "노인 복지 서비스 알려줘")
        assert await on_b.next("message-sent") == sent
        assert await on_b.next("ai-message", timeout=15) == reply

        # and the other way round
        sent, reply = await turn(on_b, session_id, "장애인 지원은요?")
        assert await on_a.next("message-sent") == sent
        assert await on_a.next("ai-message", timeout=15) == reply

        # typing reaches the other instance, never the sender; cross-instance latency
        latencies = []
        for i in range(30):
            started = time.perf_counter()
            await on_a.emit("typing", {"sessionId": session_id, "isTyping": i % 2 == 0})
            assert await on_b.next("user-typing") == {"isTyping": i % 2 == 0}
            latencies.append((time.perf_counter() - started) * 1000)
        assert on_a.of("user-typing") == []
        latencies.sort()
        figures = {
            "cross_instance_typing_ms_p50": round(statistics.median(latencies), 2),
            "cross_instance_typing_ms_max": round(latencies[-1], 2),
        }
        print("cluster:", json.dumps(figures))

        # the rate limit counts the session's messages on both instances together
        for i in range(RATE_LIMIT - 2):
            sender, other = (on_a, on_b) if i % 2 else (on_b, on_a)
            sent, reply = await turn(sender, session_id, f"질문 {i}")
            assert await other.next("message-sent") == sent
            assert await other.next("ai-message", timeout=15) == reply
        refused = await on_a.call("send-message", {"sessionId": session_id, "message": "한 번 더"})
        assert refused == {"error": {"message": RATE_LIMITED}}


async def fanout_received(server: ServerProcess) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/metrics") as response:
        text = await response.text()
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("mobok_fanout_received_total ")
    )


async def test_an_instance_decodes_no_emit_for_rooms_it_has_no_socket_in(
    tmp_path: Path,
) -> None:
    async with two_instances(tmp_path) as (a, b), chat_client(a) as on_a:
        joined = await on_a.call("join-chat", {"userId": "u4"})
        await on_a.next("ai-message")
        before = await fanout_received(b)
        for i in range(3):
            await turn(on_a, joined["sessionId"], f"질문 {i}")
            await on_a.emit("typing", {"sessionId": joined["sessionId"], "isTyping": True})
        # 3 x (message-sent, ai-message) to the room and 3 acks: none of it reached B
        assert await fanout_received(b) == before
        # while a socket of B in the same session makes B follow that room
        async with chat_client(b) as on_b:
            await on_b.call("join-chat", {"userId": "u4", "sessionId": joined["sessionId"]})
            await turn(on_a, joined["sessionId"], "한 번 더")
            await on_b.next("ai-message", timeout=15)
            assert await fanout_received(b) >= before + 2
        print("cluster: B took", await fanout_received(b) - before, "messages off Redis")


async def test_the_reaper_runs_on_every_instance_once(tmp_path: Path) -> None:
    timing = {"SESSION_TIMEOUT_MINUTES": "0.02", "SESSION_REAP_INTERVAL_MINUTES": "0.01"}
    async with (
        two_instances(tmp_path, **timing) as (a, b),
        chat_client(a) as on_a,
        chat_client(b) as on_b,
    ):
        joined = await on_a.call("join-chat", {"userId": "u5"})
        await on_b.call("join-chat", {"userId": "u5", "sessionId": joined["sessionId"]})
        # idle past 1.2 s: both instances reap; each tells its own socket, once
        for client in (on_a, on_b):
            assert await client.next("chat-left", timeout=10) == {"sessionId": joined["sessionId"]}
        # several more passes of both reapers (every 0.6 s) tell no one again
        assert await on_a.nothing("chat-left", 2) and await on_b.nothing("chat-left", 0.1)
        assert len(on_a.of("chat-left")) == len(on_b.of("chat-left")) == 1
        refused = await on_a.call(
            "send-message", {"sessionId": joined["sessionId"], "message": "안녕"}
        )
        assert "error" in refused


async def test_a_room_spans_instances(tmp_path: Path) -> None:
    sid = f"room-{uuid.uuid4().hex[:8]}"
    async with two_instances(tmp_path) as (a, b), aiohttp.ClientSession() as http:
        ws_a = await http.ws_connect(f"{a.ws_url}/v1/session/chat?sid={sid}")
        ws_b = await http.ws_connect(f"{b.ws_url}/v1/session/chat?sid={sid}")
        try:
            # both instances follow the room's Redis channel (server/rooms/registry.py)
            await until(lambda: _subscribers(f"mobok-rooms#{sid}", 2), 10, "both in the room")
            for i, (sender, role) in enumerate([(ws_a, "A"), (ws_b, "B"), (ws_a, "A")]):
                await sender.send_json(
                    {"hd": {"event": "chat.message", "role": role}, "bd": {"text": f"안녕 {i}"}}
                )
            for ws in (ws_a, ws_b):  # every client, the sender included, in one order
                texts = [(await ws.receive_json(timeout=5))["bd"]["text"] for _ in range(3)]
                assert sorted(texts) == ["안녕 0", "안녕 1", "안녕 2"]
            async with http.get(f"{b.url}/api/chat/history/{sid}") as response:
                stored = await response.json()
            assert len(stored["messages"]) == 3
        finally:
            await ws_a.close()
            await ws_b.close()


async def test_sigkill_then_resume_on_the_other_instance(tmp_path: Path) -> None:
    async with two_instances(tmp_path) as (a, b), chat_client(b) as other_tab:
        async with chat_client(a) as on_a:
            joined = await on_a.call("join-chat", {"userId": "u2"})
            session_id = joined["sessionId"]
            await on_a.next("ai-message")
            await other_tab.call("join-chat", {"userId": "u2", "sessionId": session_id})
            _, reply = await turn(on_a, session_id, "노인 복지 서비스 알려줘")
            last_seen = reply["id"]
            await other_tab.next("message-sent")
            await other_tab.next("ai-message", timeout=15)

            # instance A dies mid-conversation; the other tab keeps talking meanwhile
            a.process.send_signal(signal.SIGKILL)
            await a.process.wait()
            missed = []
            for text in ("장애인 지원은요?", "청년 주거 지원도 알려줘"):
                missed.extend(await turn(other_tab, session_id, text))

        # the client comes back on B with the id of the last message it saw
        async with chat_client(b) as resumed:
            rejoined = await resumed.call(
                "join-chat", {"userId": "u2", "sessionId": session_id, "lastMessageId": last_seen}
            )
            assert rejoined["sessionId"] == session_id
            got = []
            for i in range(len(missed)):
                got.append(await resumed.next("message-sent" if i % 2 == 0 else "ai-message"))
            assert got == missed
            live = [n for n in resumed.names() if n in ("message-sent", "ai-message")]
            assert live == ["message-sent", "ai-message"] * 2  # in order, nothing twice

            # and the conversation goes on
            sent, reply = await turn(resumed, session_id, "고마워요")
            assert await other_tab.next("message-sent") == sent
            assert await resumed.nothing("ai-message", 0.3)


def seen_ids(reader: RecordingClient) -> list[Any]:
    return [data["id"] for name, data in reader.events if name in ("message-sent", "ai-message")]


async def test_resume_during_a_burst_is_exact(tmp_path: Path) -> None:
    """Resuming while another tab is mid-burst: the replay and the live events together are
    every message after the cursor, each once, in stored order (SQLite, one instance)."""
    async with (
        fresh_database("sqlite", tmp_path) as url,
        serve(make_settings(url, max_ai_requests_per_minute=1000)) as live,
    ):
        writer = RecordingClient()
        await writer.connect(live.url)
        try:
            joined = await writer.call("join-chat", {"userId": "u3"})
            session_id = joined["sessionId"]
            cursor = (await writer.next("ai-message"))["id"]

            async def burst() -> None:
                for i in range(12):
                    await writer.call("send-message", {"sessionId": session_id, "message": f"m{i}"})
                    await asyncio.sleep(0.01)

            sending = asyncio.create_task(burst())
            readers = []
            for _ in range(4):  # resume at different points of the burst
                await asyncio.sleep(0.03)
                reader = RecordingClient()
                await reader.connect(live.url)
                await reader.call(
                    "join-chat", {"userId": "u3", "sessionId": session_id, "lastMessageId": cursor}
                )
                readers.append(reader)
            await sending
            after_cursor: list[Any] = []

            async def answered() -> bool:  # the 12 messages and their 12 answers are stored
                stored = [m.id for m in await live.app[CHAT_KEY].history(session_id, 50)]
                after_cursor[:] = stored[stored.index(cursor) + 1 :]
                return len(after_cursor) == 24

            await until(answered, 30, "the last answers")
            for reader in readers:
                await until(lambda r=reader: len(seen_ids(r)) >= 24, 10, "every event")
                seen = seen_ids(reader)
                # everything after the cursor, each exactly once (live events of one instance
                # may leave in a slightly different order than they were stored)
                assert len(seen) == len(set(seen))
                assert sorted(seen) == sorted(after_cursor)
                await reader.sio.disconnect()
        finally:
            await writer.sio.disconnect()


pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]
