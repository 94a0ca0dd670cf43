"""Faults (issue #5): the database stopped mid-load and started again.

The server runs as its own process against a fresh MariaDB database while `/chat` clients
send messages without pause. The MariaDB server itself (the machine's, as `.ci/run` starts
it) is shut down under that load and started again: clients get the contract's temporary
failure, health says 503, nothing crashes, service resumes by itself, and every message the
server acknowledged is in `chat_messages` afterwards. The plain WebSocket protocols are
checked during the outage too.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomysql
import socketio

from server.texts import TEMPORARY_FAILURE
from tests.conftest import MYSQL_SERVER_URL, _mysql_reachable, fresh_database, require
from tests.processes import ServerProcess, health, server_process
from tests.sio import RecordingClient
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
from tests.waiting import until

CHAT_CLIENTS = 4
PAUSE = 0.05  # between one client's messages
OUTAGE = 2.0  # the database stays away at least this long


# -- the MariaDB server of the machine ------------------------------------------------------


@dataclass
class LocalMariaDB:
    """The MariaDB server behind a URL, when it is a process of this machine: stopped with
    `SHUTDOWN` and started again exactly as it was (`start-stop-daemon`, as `.ci/run` does,
    with the program and arguments it runs with now)."""

    host: str
    port: int
    user: str
    password: str
    pid_file: Path
    argv: list[str]

    @classmethod
    async def behind(cls, url: str) -> LocalMariaDB | None:
        parts = urlsplit(url)
        server = cls(
            parts.hostname or "127.0.0.1",
            parts.port or 3306,
            unquote(parts.username or "root"),
            unquote(parts.password or ""),
            Path(),
            [],
        )
        rows = await server._query("SELECT @@pid_file, @@datadir")
        pid_file = Path(str(rows[0][0]))
        server.pid_file = pid_file if pid_file.is_absolute() else Path(str(rows[0][1])) / pid_file
        try:
            server.argv = _command_line(_pid_in(server.pid_file))
        except (OSError, ValueError):
            return None  # another machine's (or container's) server: not ours to restart
        return server

    async def _query(self, sql: str) -> list[tuple[Any, ...]]:
        conn = await aiomysql.connect(
            host=self.host, port=self.port, user=self.user, password=self.password
        )
        try:
            async with conn.cursor() as cur:
                await cur.execute(sql)
                return list(await cur.fetchall())
        finally:
            conn.close()

    async def alive(self) -> bool:
        try:
            await asyncio.wait_for(self._query("SELECT 1"), 5)
        except Exception:
            return False
        return True

    async def stop(self) -> None:
        pid = _pid_in(self.pid_file)
        try:
            await self._query("SHUTDOWN")
        except Exception:  # the server may drop the connection before it answers
            pass
        for _ in range(600):
            if not _running(pid):
                return
            await asyncio.sleep(0.1)
        raise AssertionError("MariaDB did not stop within 60 s")

    async def start(self) -> None:
        daemon = await asyncio.create_subprocess_exec(
            "start-stop-daemon",
            "--start",
            "--oknodo",
            "--background",
            "--pidfile",
            str(self.pid_file),
            "--exec",
            self.argv[0],
            "--",
            *self.argv[1:],
        )
        await daemon.wait()
        for _ in range(600):
            if await self.alive():
                return
            await asyncio.sleep(0.1)
        raise AssertionError("MariaDB did not accept connections within 60 s of its start")

    async def ensure_running(self) -> None:
        """Every later test needs the database: start it again whatever happened."""
        for _ in range(3):
            if await self.alive():
                return
            try:
                await self.start()
            except AssertionError:
                continue
        assert await self.alive(), "MariaDB could not be started again"


def _pid_in(pid_file: Path) -> int:
    return int(pid_file.read_text().strip())


def _command_line(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [arg.decode() for arg in raw.split(b"\0") if arg]


def _running(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


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


async def test_database_restart_under_load_loses_no_acknowledged_message(
    tmp_path: Path,
) -> None:
    require(await _mysql_reachable(), f"MySQL not reachable at {MYSQL_SERVER_URL}")
    mariadb = await LocalMariaDB.behind(MYSQL_SERVER_URL)
    require(
        mariadb is not None and os.geteuid() == 0,
        "the MariaDB server is not a local process this test may stop and start (needs root)",
    )
    assert mariadb is not None
    async with fresh_database("mysql", tmp_path) as url:
        try:
            await _outage_under_load(tmp_path, url, mariadb)
        finally:
            await mariadb.ensure_running()


async def _outage_under_load(tmp_path: Path, url: str, mariadb: LocalMariaDB) -> None:
    env = {"DATABASE_URL": url, "MAX_AI_REQUESTS_PER_MINUTE": "100000"}
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

            stopped = time.monotonic()
            await mariadb.stop()
            down = time.monotonic()
            # every /chat client is told, in the contract's words
            await until(lambda: all(s.refused for s in load), GENEROUS, "refusals")
            status, body = await health(server.url)
            assert status == 503 and body["db"] == "error" and body["status"] == "ok"
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
            await asyncio.sleep(OUTAGE - (time.monotonic() - down))

            await mariadb.start()
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
        f"{len(stored - acked)} stored without an ack; MariaDB stopping "
        f"{down - stopped:.1f} s, then down {up - down:.1f} s; health 200 "
        f"{healthy - up:.2f} s and every client acked {resumed - up:.2f} s after MariaDB was up"
    )
    assert lost == set()
    assert set(refusals) == {TEMPORARY_FAILURE}
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
