"""Faults (issue #5): the database lost mid-load and back again.

The server runs as its own process against a fresh MariaDB database while `/chat` clients
send messages without pause. It reaches MariaDB through a TCP proxy the test owns
(`tests/support/tcp_proxy.py`); the machine's MariaDB itself is never touched. The proxy is
cut under that load, in two ways:

- reset: every connection reset and new ones refused, as when the database server stops.
  Clients get the contract's temporary failure, health says 503, the plain WebSocket
  protocols fail cleanly;
- drop: nothing forwarded and nothing closed, as when the network to the database goes
  silent. Health says 503 (its ping gives up); requests wait or fail with the temporary
  failure.

Then the proxy forwards again: nothing crashed, service resumes by itself, and every message
the server acknowledged is in `chat_messages` afterwards.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomysql
import pytest
import socketio

from server.texts import TEMPORARY_FAILURE
from tests.conftest import MYSQL_SERVER_URL, fresh_database
from tests.support.processes import ServerProcess, health, server_process
from tests.support.sio import RecordingClient
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import until
from tests.test_faults import (
    GENEROUS,
    FrameClient,
    agent_block_ended,
    agent_chat,
    counseling_ended,
    counseling_request,
    room_question,
    room_turn_ended,
)

pytestmark = pytest.mark.slow  # server processes and outages: seconds each

CHAT_CLIENTS = 4
PAUSE = 0.05  # between one client's messages
OUTAGE = 2.0  # the database stays away at least this long


# -- clients under load ----------------------------------------------------------------------


@dataclass
class Sender:
    """One `/chat` client that sends messages one after another, each awaiting its ack."""

    name: str
    client: RecordingClient
    session_id: str
    acked: dict[str, float] = field(default_factory=dict)  # content -> when acknowledged
    # content, error message, when it was sent
    refused: list[tuple[str, str, float]] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)  # no ack at all

    async def run(self, stop: asyncio.Event) -> None:
        number = 0
        while not stop.is_set():
            number += 1
            await self.send(f"{self.name} 메시지 {number}")
            await asyncio.sleep(PAUSE)

    async def send(self, content: str) -> dict[str, Any] | None:
        sent = time.monotonic()
        try:
            ack = await self.client.call(
                "send-message", {"sessionId": self.session_id, "message": content}, GENEROUS
            )
        except socketio.exceptions.TimeoutError:
            self.unanswered.append(content)
            return None
        if "error" in ack:
            self.refused.append((content, ack["error"]["message"], sent))
        else:
            assert ack["content"] == content
            self.acked[content] = time.monotonic()
        return dict(ack)

    def acked_since(self, moment: float) -> int:
        return sum(1 for when in self.acked.values() if when >= moment)


@asynccontextmanager
async def senders(server: ServerProcess) -> AsyncIterator[list[Sender]]:
    opened: list[RecordingClient] = []
    try:
        made: list[Sender] = []
        for index in range(CHAT_CLIENTS):
            client = RecordingClient()
            opened.append(client)
            # one client on long-polling: its requests are HTTP requests, not one websocket
            await client.connect(server.url, transport="polling" if index == 0 else "websocket")
            joined = await client.call("join-chat", {"userId": f"load-{index}"})
            made.append(Sender(f"c{index}", client, str(joined["sessionId"])))
        yield made
    finally:
        for client in opened:
            await client.close()


async def stored_rows(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    parts = urlsplit(url)
    conn = await aiomysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        db=parts.path.lstrip("/"),
        charset="utf8mb4",
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql, args or None)
            return list(await cur.fetchall())
    finally:
        conn.close()


# -- the outage --------------------------------------------------------------------------


@pytest.mark.parametrize("cut", ["reset", "drop"])
async def test_database_outage_under_load_loses_no_acknowledged_message(
    tmp_path: Path, cut: str
) -> None:
    parts = urlsplit(MYSQL_SERVER_URL)
    async with (
        fresh_database("mysql", tmp_path) as url,
        TcpProxy(parts.hostname or "127.0.0.1", parts.port or 3306) as proxy,
    ):
        await _outage_under_load(tmp_path, url, _through(url, proxy.port), proxy, cut)


def _through(url: str, port: int) -> str:
    """The same database URL, reached through the proxy on `port`."""
    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{userinfo}{at}127.0.0.1:{port}").geturl()


async def _outage_under_load(
    tmp_path: Path, url: str, proxied: str, proxy: TcpProxy, cut: str
) -> None:
    env = {"DATABASE_URL": proxied, "MAX_AI_REQUESTS_PER_MINUTE": "100000"}
    async with server_process(tmp_path, **env) as server, senders(server) as load:
        ws = server.ws_url
        sockets: list[FrameClient] = []
        stop = asyncio.Event()
        running = [asyncio.create_task(s.run(stop)) for s in load]
        try:
            for path in (
                "/ws/chat/agent-outage",
                "/ws/session/counsel-outage",
                "/v1/session/chat?sid=room-outage",
            ):
                sockets.append(await FrameClient.connect(ws + path))
            agent, counseling, room = sockets
            await until(lambda: all(len(s.acked) >= 10 for s in load), GENEROUS, "the load")

            down = time.monotonic()
            if cut == "reset":
                await proxy.reset()
                # every /chat client is told, in the contract's words
                await until(lambda: all(s.refused for s in load), GENEROUS, "refusals")
            else:
                proxy.drop()  # health's ping gives up after its timeout (5 s)
            status, body = await health(server.url)
            assert status == 503 and body["db"] == "error" and body["status"] == "ok"
            if cut == "reset":
                await _plain_websockets_fail_cleanly(agent, counseling, room)
                joiner = RecordingClient()
                await joiner.connect(server.url)
                try:
                    refused = await joiner.call("join-chat", {"userId": "joins-in-the-outage"})
                finally:
                    await joiner.close()
                assert refused == {"error": {"message": TEMPORARY_FAILURE}}
            # an agent client (re)connecting now: its pending reports cannot be read yet
            sockets.append(await FrameClient.connect(f"{ws}/ws/chat/agent-outage-late"))
            assert server.running
            await asyncio.sleep(max(0.0, OUTAGE - (time.monotonic() - down)))  # outage length

            await proxy.restore()
            up = time.monotonic()
            await until(lambda: _healthy(server), 30, "health back to 200")
            healthy = time.monotonic()
            await until(lambda: all(s.acked_since(up) for s in load), 30, "acks again")
            resumed = time.monotonic()
            await until(lambda: all(s.acked_since(up) >= 5 for s in load), GENEROUS, "load")
            stop.set()
            await asyncio.gather(*running)
            await _every_protocol_answers_again(url, load, *sockets)
        finally:
            stop.set()
            await asyncio.gather(*running, return_exceptions=True)
            for frame_client in sockets:
                await frame_client.close()
        assert server.running

    acked = {content for s in load for content in s.acked}
    stored = {
        str(row[0])
        for row in await stored_rows(url, "SELECT content FROM chat_messages WHERE sender='user'")
    }
    refusals = [message for s in load for _, message, _ in s.refused]
    # a refusal of a message sent once health said 200 again: a stale pooled connection
    refused_after_recovery = [c for s in load for c, _, sent in s.refused if sent > healthy]
    lost = acked - stored
    print(
        f"\nDB outage: {len(acked)} messages acked, {len(acked & stored)} of them in the "
        f"database, {len(lost)} lost; {len(refusals)} refused during the outage, "
        f"{len(stored - acked)} stored without an ack; database cut ({cut}) for "
        f"{up - down:.1f} s; health 200 {healthy - up:.2f} s and every client acked "
        f"{resumed - up:.2f} s after it was back"
    )
    assert lost == set()
    if cut == "reset":
        assert set(refusals) == {TEMPORARY_FAILURE}
    else:  # requests mostly wait for the link to come back; any that gave up said so
        assert set(refusals) <= {TEMPORARY_FAILURE}
    assert refused_after_recovery == []
    assert [c for s in load for c in s.unanswered] == []
    assert server.process.returncode == 0
    assert server.crashes() == []


async def _healthy(server: ServerProcess) -> bool:
    return (await health(server.url))[0] == 200


async def _plain_websockets_fail_cleanly(
    agent: FrameClient, counseling: FrameClient, room: FrameClient
) -> None:
    starts = len(agent.frames), len(counseling.frames), len(room.frames)
    await agent.send(agent_chat("장애 중 질문"))
    await counseling.send(counseling_request("장애 중 상담"))
    await room.send(room_question("장애 중 방"))
    agent_frames = await agent.until(lambda f: len(f) > starts[0])
    assert agent_frames[starts[0] :] == [{"type": "error", "message": TEMPORARY_FAILURE}]
    counseling_frames = await counseling.until(counseling_ended(starts[1]))
    assert counseling_frames[starts[1] :] == [
        {"type": "ai_stream_begin", "data": {}},
        {"type": "ai_stream_error", "data": {"error": TEMPORARY_FAILURE}},
    ]
    room_frames = await room.until(lambda f: len(f) > starts[2])
    assert room_frames[starts[2] :] == [
        {"hd": {"event": "error"}, "bd": {"text": TEMPORARY_FAILURE}}
    ]


async def _every_protocol_answers_again(
    url: str,
    load: list[Sender],
    agent: FrameClient,
    counseling: FrameClient,
    room: FrameClient,
    late_agent: FrameClient,
) -> None:
    starts = len(agent.frames), len(counseling.frames), len(room.frames)
    await agent.send(agent_chat("복구 후 질문"))
    await late_agent.send(agent_chat("장애 중 연결한 질문"))
    await counseling.send(counseling_request("복구 후 상담"))
    await room.send(room_question("복구 후 방"))
    for s in load:  # each session's last message is answered
        ack = await s.send(f"{s.name} 마지막")
        assert ack is not None and "error" not in ack
    for client, start in ((agent, starts[0]), (late_agent, 0)):
        agent_frames = await client.until(agent_block_ended(start))
        kinds = [f["type"] for f in agent_frames[start:]]
        assert kinds[0] == "start" and "error" not in kinds
    counseling_frames = await counseling.until(counseling_ended(starts[1]))
    assert counseling_frames[-1]["type"] == "ai_stream_complete"
    room_frames = await room.until(room_turn_ended(starts[2]))
    assert room_frames[-1]["hd"]["event"] == "llm.response"
    for s in load:
        await until(functools.partial(_last_answered, url, s), GENEROUS, f"{s.name}'s answer")


async def _last_answered(url: str, s: Sender) -> bool:
    """The session's last message has its reply stored, and the client has received it."""
    rows = await stored_rows(
        url,
        "SELECT id, content, metadata FROM chat_messages WHERE session_id = %s",
        s.session_id,
    )
    [last_id] = [row[0] for row in rows if row[1] == f"{s.name} 마지막"]
    replies = [row[1] for row in rows if row[2] and json.loads(row[2]).get("replyTo") == last_id]
    received = [m["content"] for m in s.client.of("ai-message")]
    return bool(replies) and replies[0] in received
