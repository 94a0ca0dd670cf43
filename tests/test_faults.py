"""Faults (issue #5): the model hanging, failing or stalling, and SIGTERM with turns in flight.

Each test runs the server as its own process (`python -m server`), as production does, and
talks to it over real sockets with every protocol that has an AI turn. The database outage
is in `test_faults_db.py`; the helpers for a server process live here.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.texts import AI_FAILED
from tests.support.fakes.openai_server import FakeOpenAI, running_fake_openai
from tests.support.processes import ServerProcess, server_process
from tests.support.sio import RecordingClient
from tests.support.waiting import until

pytestmark = pytest.mark.slow  # server processes and outages: seconds each

AI_TIMEOUT = 2.0  # AI_TIMEOUT_SECONDS of the model-outage servers
GENEROUS = 10.0  # slack on top of a deadline: a loaded CI machine, not a speed claim
PROJECT, BUTLER = "project_001", "집사"  # the shipped agent configuration (CONTRACT §3)


# -- the protocols, as their clients speak them -------------------------------------------

Frames = list[dict[str, Any]]
FramesDone = Callable[[Frames], bool]  # has the awaited frame arrived?


class FrameClient:
    """A plain WebSocket client (CONTRACT §3, §4, §5) that keeps every frame it receives."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._http = http
        self.ws = ws
        self.frames: Frames = []
        self.closed = asyncio.Event()
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str) -> FrameClient:
        http = aiohttp.ClientSession()
        try:
            ws = await http.ws_connect(url, autoping=True)
        except BaseException:
            await http.close()
            raise
        return cls(http, ws)

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.frames.append(json.loads(msg.data))
                self._changed.set()
        self.closed.set()
        self._changed.set()

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(frame, ensure_ascii=False))

    async def until(self, done: FramesDone, timeout: float = GENEROUS) -> Frames:
        """Wait until `done(frames)` holds; the frames then."""

        async def wait() -> Frames:
            while not done(self.frames):
                if self.closed.is_set():
                    raise AssertionError(f"socket closed; frames: {self.frames}")
                self._changed.clear()
                await self._changed.wait()
            return list(self.frames)

        return await asyncio.wait_for(wait(), timeout)

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self._http.close()


def agent_chat(message: str) -> dict[str, Any]:
    return {
        "type": "chat",
        "message": message,
        "agent_name": BUTLER,
        "project_id": PROJECT,
        "images": [],
    }


def counseling_request(message: str) -> dict[str, Any]:
    return {"type": "request_ai_response", "data": {"message": message, "emotion": "sad"}}


def room_question(question: str) -> dict[str, Any]:
    return {"hd": {"event": "llm.invoke", "role": "A"}, "bd": {"text": question}}


def agent_block_ended(start: int) -> FramesDone:
    return lambda frames: {"type": "end"} in frames[start:]


def counseling_ended(start: int) -> FramesDone:
    ends = {"ai_stream_complete", "ai_stream_error"}
    return lambda frames: any(f["type"] in ends for f in frames[start:])


def room_turn_ended(start: int) -> FramesDone:
    ends = {"llm.response", "error"}
    return lambda frames: any(f["hd"]["event"] in ends for f in frames[start:])


@dataclass
class Clients:
    """One client of each protocol with an AI turn, connected to one server."""

    chat: RecordingClient
    session_id: str
    agent: FrameClient
    counseling: FrameClient
    room: FrameClient

    @classmethod
    @asynccontextmanager
    async def of(cls, server: ServerProcess, tag: str) -> AsyncIterator[Clients]:
        chat = RecordingClient()
        opened: list[FrameClient] = []
        try:
            await chat.connect(server.url)
            joined = await chat.call("join-chat", {"userId": f"user-{tag}"})
            await chat.next("ai-message")  # the greeting
            for path in (
                f"/ws/chat/agent-{tag}",
                f"/ws/session/counsel-{tag}",
                f"/v1/session/chat?sid=room-{tag}",
            ):
                opened.append(await FrameClient.connect(server.ws_url + path))
            yield cls(chat, str(joined["sessionId"]), *opened)
        finally:
            for client in opened:
                await client.close()
            await chat.close()


# -- the model server hanging, failing or stalling ----------------------------------------


@asynccontextmanager
async def model_outage_server(tmp_path: Path, fake: FakeOpenAI) -> AsyncIterator[ServerProcess]:
    async with server_process(
        tmp_path,
        AI_PROVIDER="openai",
        OPENAI_API_KEY="sk-fake",
        OPENAI_BASE_URL=fake.url,
        AI_TIMEOUT_SECONDS=str(AI_TIMEOUT),
    ) as server:
        yield server


async def stored_chat_messages(server: ServerProcess, session_id: str) -> list[tuple[str, str]]:
    url = f"{server.url}/api/v1/chat/sessions/{session_id}/messages"
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as response:
            assert response.status == 200
            body = await response.json()
    return [(m["sender"], m["content"]) for m in body["messages"]]


async def room_log(server: ServerProcess, sid: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/api/chat/history/{sid}") as response:
            assert response.status == 200
            return list((await response.json())["messages"])


async def every_turn(c: Clients, tag: str) -> dict[str, list[dict[str, Any]]]:
    """Ask each protocol's model once, at the same time; each one's frames until its turn
    ended (the `/chat` events under `chat`)."""
    starts = {
        "agent": len(c.agent.frames),
        "counseling": len(c.counseling.frames),
        "room": len(c.room.frames),
    }
    await c.chat.emit("send-message", {"sessionId": c.session_id, "message": f"질문 {tag}"})
    await c.agent.send(agent_chat(f"에이전트 {tag}"))
    await c.counseling.send(counseling_request(f"상담 {tag}"))
    await c.room.send(room_question(f"방 {tag}"))

    async def chat_turn() -> list[dict[str, Any]]:
        sent = await c.chat.next("message-sent", timeout=GENEROUS)
        outcome = asyncio.ensure_future(c.chat.next("ai-message", timeout=AI_TIMEOUT + GENEROUS))
        failure = asyncio.ensure_future(c.chat.next("error", timeout=AI_TIMEOUT + GENEROUS))
        done, pending = await asyncio.wait({outcome, failure}, return_when="FIRST_COMPLETED")
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        event = "ai-message" if outcome in done else "error"
        return [{"message-sent": sent}, {event: next(iter(done)).result()}]

    timeout = AI_TIMEOUT + GENEROUS
    chat, agent, counseling, room = await asyncio.gather(
        chat_turn(),
        c.agent.until(agent_block_ended(starts["agent"]), timeout),
        c.counseling.until(counseling_ended(starts["counseling"]), timeout),
        c.room.until(room_turn_ended(starts["room"]), timeout),
    )
    return {
        "chat": chat,
        "agent": agent[starts["agent"] :],
        "counseling": counseling[starts["counseling"] :],
        "room": room[starts["room"] :],
    }


@pytest.mark.parametrize("fault", ["hang", "http_500", "stall"])
async def test_model_outage_is_reported_in_time_and_service_resumes(
    tmp_path: Path, fault: str
) -> None:
    async with running_fake_openai() as fake, model_outage_server(tmp_path, fake) as server:
        async with Clients.of(server, fault) as c:
            if fault == "hang":
                fake.hang = True
            elif fault == "http_500":
                fake.fail_status = 500
            else:
                fake.stall = True
            loop = asyncio.get_running_loop()
            started = loop.time()
            failed = await every_turn(c, "1")
            took = loop.time() - started
            assert took < AI_TIMEOUT + GENEROUS
            # one request per turn: the SDK did not retry behind the deadline's back
            assert len(fake.requests) == 4

            assert failed["chat"][0]["message-sent"]["content"] == "질문 1"
            assert failed["chat"][1] == {"error": {"message": AI_FAILED}}
            agent = [f for f in failed["agent"] if f["type"] != "response"]
            assert agent == [
                {"type": "start"},
                {"type": "error", "message": AI_FAILED},
                {"type": "end"},
            ]
            assert failed["counseling"][0] == {"type": "ai_stream_begin", "data": {}}
            assert failed["counseling"][-1] == {
                "type": "ai_stream_error",
                "data": {"error": AI_FAILED},
            }
            assert failed["room"][0]["bd"]["text"] == "방 1"  # its own frame, broadcast
            assert failed["room"][-1] == {"hd": {"event": "error"}, "bd": {"text": AI_FAILED}}
            # the user's message stays stored, with no reply
            assert (await stored_chat_messages(server, c.session_id))[-1] == ("user", "질문 1")
            assert [(m["participant"]) for m in await room_log(server, f"room-{fault}")] == ["A"]

            fake.hang = fake.stall = False
            fake.fail_status = None
            answered = await every_turn(c, "2")
            assert "ai-message" in answered["chat"][1], answered["chat"]
            assert answered["chat"][1]["ai-message"]["content"].startswith("검색 결과입니다.")
            assert answered["agent"][-1] == {"type": "end"}
            assert all(f["type"] in {"start", "response", "end"} for f in answered["agent"])
            assert answered["counseling"][-1]["type"] == "ai_stream_complete"
            assert answered["room"][-1]["hd"]["event"] == "llm.response"
            stored = await stored_chat_messages(server, c.session_id)
            assert [s for s, _ in stored[-3:]] == ["user", "user", "assistant"]
            # the turn after an outage sees the unanswered question too
            [asked] = [
                [m["content"] for m in r["messages"]]
                for r in fake.requests[4:]
                if r["messages"][-1]["content"] == "질문 2"
            ]
            assert "질문 1" in asked
        assert server.running
    assert server.process.returncode == 0
    assert server.crashes() == []


# -- SIGTERM with turns in flight --------------------------------------------------------


def _stored_rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(query).fetchall()


async def test_sigterm_finishes_the_turns_in_flight_before_exit(tmp_path: Path) -> None:
    ai_timeout = 20.0
    async with running_fake_openai() as fake:
        fake.delay = 1.5  # each model request: a /chat or agent turn makes two (tool, answer)
        async with server_process(
            tmp_path,
            AI_PROVIDER="openai",
            OPENAI_API_KEY="sk-fake",
            OPENAI_BASE_URL=fake.url,
            AI_TIMEOUT_SECONDS=str(ai_timeout),
            DATABASE_URL=f"sqlite://{tmp_path / 'sigterm.sqlite3'}",
        ) as server:
            chats: list[tuple[RecordingClient, str]] = []
            agent: FrameClient | None = None
            room: FrameClient | None = None
            counseling: FrameClient | None = None
            try:
                for index, transport in enumerate(("websocket", "websocket", "polling")):
                    client = RecordingClient()
                    # the disconnect, recorded in order with the events before it
                    client.sio.on("disconnect", _recorder(client, "disconnect"), namespace="/chat")
                    await client.connect(server.url, transport=transport)
                    joined = await client.call("join-chat", {"userId": f"u{index}"})
                    await client.next("ai-message")
                    chats.append((client, str(joined["sessionId"])))
                agent = await FrameClient.connect(f"{server.ws_url}/ws/chat/agent-sigterm")
                room = await FrameClient.connect(
                    f"{server.ws_url}/v1/session/chat?sid=room-sigterm"
                )
                counseling = await FrameClient.connect(f"{server.ws_url}/ws/session/c-sigterm")

                for index, (client, session_id) in enumerate(chats):
                    await client.emit(
                        "send-message", {"sessionId": session_id, "message": f"질문 {index}"}
                    )
                await agent.send(agent_chat("에이전트 질문"))
                await room.send(room_question("방 질문"))
                await counseling.send(counseling_request("상담 질문"))
                for client, _ in chats:
                    await client.next("message-sent")
                # every turn has reached the model: SIGTERM now lands in the middle of them
                await until(lambda: len(fake.requests) >= 6, GENEROUS, "six turns at the model")
                assert all(len(client.of("ai-message")) == 1 for client, _ in chats)  # greetings
                assert {"type": "end"} not in await agent.until(lambda f: bool(f))
                server.process.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(server.process.wait(), timeout=ai_timeout + GENEROUS)
                assert code == 0

                for client, _ in chats:
                    await client.next("disconnect", timeout=GENEROUS)
                    names = client.names()
                    # the reply arrived: nothing arrives once the server has said goodbye. (The
                    # Python client handles each Engine.IO message in a task of its own, so the
                    # order of its handlers may differ from the order on the wire.)
                    assert names[3] == "message-sent" and names[-2:] in (
                        ["ai-message", "disconnect"],
                        ["disconnect", "ai-message"],
                    ), names
                    assert client.of("ai-message")[-1]["content"].startswith("검색 결과입니다.")
                await asyncio.wait_for(agent.closed.wait(), GENEROUS)
                kinds = [f["type"] for f in agent.frames]
                assert kinds[0] == "start" and kinds[-1] == "end" and "error" not in kinds
                await asyncio.wait_for(room.closed.wait(), GENEROUS)
                assert room.frames[-1]["hd"]["event"] == "llm.response"
                await asyncio.wait_for(counseling.closed.wait(), GENEROUS)
                kinds = [f["type"] for f in counseling.frames]
                assert kinds[0] == "ai_stream_begin" and kinds[-1] == "ai_stream_complete", kinds
            finally:
                for client, _ in chats:
                    await client.close()
                for frame_client in (agent, room, counseling):
                    if frame_client is not None:
                        await frame_client.close()
        assert server.crashes() == []

    db = tmp_path / "sigterm.sqlite3"
    replies = _stored_rows(
        db, "SELECT content FROM chat_messages WHERE sender = 'assistant' AND metadata IS NOT NULL"
    )
    assert len(replies) == 3 and all(r[0].startswith("검색 결과입니다.") for r in replies)
    agent_rows = _stored_rows(db, "SELECT role FROM agent_messages ORDER BY created_at")
    assert [r[0] for r in agent_rows] == ["user", "assistant"]
    room_rows = _stored_rows(db, "SELECT participant FROM room_messages ORDER BY created_at")
    assert [r[0] for r in room_rows] == ["A", "llm"]


def _recorder(client: RecordingClient, event: str) -> Callable[..., Awaitable[None]]:
    async def record(*args: Any) -> None:
        await client._record(event, *args)

    return record
