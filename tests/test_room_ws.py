"""CONTRACT §4: the room WebSocket /v1/session/chat?sid=, its log and its history route."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from models.rooms import RoomMessage
from server import db
from server.ai.base import LLMEvent, PromptMessage, ProviderError, TextDelta, ToolSpec
from server.keys import ROOMS
from tests.conftest import LiveServer, make_settings, postgres_columns, require, serve

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
WELFARE_QUESTION = "노인 복지 서비스 알려줘"


class Room:
    """One client of a room, over a real websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, frame: Any) -> None:
        await self.ws.send_str(json.dumps(frame, ensure_ascii=False))

    async def say(self, text: str, role: str | None = None, **bd: Any) -> None:
        hd: dict[str, Any] = {"event": "chat.message"}
        if role is not None:
            hd["role"] = role
        await self.send({"hd": hd, "bd": {"text": text, **bd}})

    async def next(self) -> dict[str, Any]:
        message = await self.ws.receive(timeout=20)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        frame: dict[str, Any] = json.loads(message.data)
        return frame

    async def until(self, event: str) -> list[dict[str, Any]]:
        """Every frame up to and including the next one with `hd.event == event`."""
        frames = [await self.next()]
        while frames[-1]["hd"]["event"] != event:
            frames.append(await self.next())
        return frames


def room_url(live: LiveServer, sid: str) -> str:
    return live.url.replace("http://", "ws://") + f"/v1/session/chat?sid={sid}"


@asynccontextmanager
async def clients(live: LiveServer, *sids: str) -> AsyncIterator[list[Room]]:
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())
        rooms = [
            Room(await stack.enter_async_context(http.ws_connect(room_url(live, s)))) for s in sids
        ]
        yield rooms


async def history(live: LiveServer, sid: str, query: str = "") -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{live.url}/api/chat/history/{sid}{query}") as resp:
            assert resp.status == 200
            body: dict[str, Any] = await resp.json()
            return body


async def prove_quiet(*rooms: Room) -> None:
    """Each client's next frame is the first probe: nothing else was waiting for it."""
    await rooms[0].say("probe", role="probe")
    for room in rooms:
        assert (await room.next())["bd"]["text"] == "probe"


def deltas(frames: Sequence[dict[str, Any]]) -> str:
    end = frames[-1]["hd"]
    assert end["event"] == "llm.response" and end["role"] == "llm"
    assert ISO_MS.match(end["timestamp"])
    streamed = [f for f in frames[:-1] if f["hd"]["event"] == "llm.streaming"]
    assert streamed and all(f["hd"] == {"event": "llm.streaming", "role": "llm"} for f in streamed)
    return "".join(f["bd"]["text"] for f in streamed)


async def test_broadcast_to_the_room_only_sender_included(any_server: LiveServer) -> None:
    async with clients(any_server, "room-1", "room-1", "room-2") as (a, b, other):
        await a.say("안녕하세요!", role="A")
        for room in (a, b):
            frame = await room.next()
            assert frame["hd"]["event"] == "chat.message" and frame["hd"]["role"] == "A"
            assert frame["bd"] == {"text": "안녕하세요!"}
            assert ISO_MS.match(frame["hd"]["timestamp"])
        await b.say("role 없이 보냄")
        assert (await a.next())["hd"]["role"] == "user"
        assert (await b.next())["hd"]["role"] == "user"
        await b.send(
            {
                "hd": {"event": "chat.message", "role": "B", "timestamp": "2025-11-22T15:30:00Z"},
                "bd": {"text": "메시지", "extra": [1]},
                "meta": {"kept": True},
            }
        )
        kept = await a.next()
        assert kept == await b.next()
        assert kept["hd"]["timestamp"] == "2025-11-22T15:30:00Z"  # the client's, untouched
        assert kept["bd"] == {"text": "메시지", "extra": [1]} and kept["meta"] == {"kept": True}
        await prove_quiet(other)  # room-2 saw none of room-1's frames
        await prove_quiet(a, b)  # and room-1 none of room-2's
    rows = await RoomMessage.filter(session_id="room-1").order_by("created_at")
    assert [r.participant for r in rows] == ["A", "user", "B", "probe"]
    assert rows[2].body == kept
    assert await RoomMessage.filter(session_id="room-2").count() == 1


async def test_llm_invoke_and_prompt_stream_to_the_whole_room(any_server: LiveServer) -> None:
    async with clients(any_server, "room-ai", "room-ai", "elsewhere") as (a, b, other):
        await a.send({"hd": {"event": "llm.invoke", "role": "A"}, "bd": {"text": WELFARE_QUESTION}})
        first = [await a.until("llm.response"), await b.until("llm.response")]
        assert first[0] == first[1]
        assert first[0][0]["hd"]["event"] == "llm.invoke"  # the question itself comes first
        answer = first[0][-1]["bd"]["text"]
        assert deltas(first[0][1:]) == answer
        assert "1. " in answer and "- 담당:" in answer  # the welfare tool's numbered format

        await b.say("이건 무시", role="B", prompt="장애인 활동 지원")
        second = [await a.until("llm.response"), await b.until("llm.response")]
        assert second[0] == second[1]
        assert second[0][0]["bd"]["prompt"] == "장애인 활동 지원"
        assert deltas(second[0][1:]) == second[0][-1]["bd"]["text"]
        await prove_quiet(other)
    stored = (await history(any_server, "room-ai"))["messages"]
    assert [m["participant"] for m in stored] == ["A", "llm", "B", "llm"]
    assert stored[1]["body"] == first[0][-1] and stored[3]["body"] == second[0][-1]


class ScriptedLLM:
    """Replies `reply-<n>` in three deltas and records every prompt it was given."""

    name = "scripted"

    def __init__(self) -> None:
        self.prompts: list[list[PromptMessage]] = []

    async def stream(
        self, messages: Sequence[PromptMessage], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[LLMEvent]:
        self.prompts.append(list(messages))
        for piece in ("re", "ply-", str(len(self.prompts))):
            yield TextDelta(piece)

    async def aclose(self) -> None:
        return None


async def test_turns_run_in_order_with_the_room_as_context(server: LiveServer) -> None:
    llm = ScriptedLLM()
    server.app[ROOMS].llm = llm
    async with clients(server, "ctx", "ctx") as (a, b):
        for sender, role, text in ((a, "A", "점심 뭐 먹지?"), (b, "B", "김치찌개")):
            await sender.say(text, role=role)
            assert (await a.next())["bd"]["text"] == (await b.next())["bd"]["text"] == text
        await a.send({"hd": {"event": "llm.invoke", "role": "A"}, "bd": {"text": "첫 질문"}})
        assert (await b.next())["bd"]["text"] == "첫 질문"  # stored before the second question
        await b.send({"hd": {"event": "llm.invoke", "role": "B"}, "bd": {"text": "두번째"}})
        for room in (a, b):
            frames = await room.until("llm.response")
            frames += await room.until("llm.response")
            from_model = [f for f in frames if f["hd"]["role"] == "llm"]
            ends = [i for i, f in enumerate(from_model) if f["hd"]["event"] == "llm.response"]
            # the second turn streams only after the first one has ended
            assert deltas(from_model[: ends[0] + 1]) == "reply-1"
            assert deltas(from_model[ends[0] + 1 :]) == "reply-2"
    first, second = llm.prompts
    assert first[0].role == "system"
    assert [(m.role, m.content) for m in first[1:]] == [
        ("user", "A: 점심 뭐 먹지?"),
        ("user", "B: 김치찌개"),
        ("user", "A: 첫 질문"),  # the later question is not in the first turn's context
    ]
    assert [(m.role, m.content) for m in second[1:]] == [
        ("user", "A: 점심 뭐 먹지?"),
        ("user", "B: 김치찌개"),
        ("user", "A: 첫 질문"),
        ("assistant", "reply-1"),
        ("user", "B: 두번째"),
    ]


class BrokenLLM:
    name = "broken"

    async def stream(
        self, messages: Sequence[PromptMessage], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[LLMEvent]:
        raise ProviderError("provider down")
        yield TextDelta("")  # unreachable: makes this an async generator

    async def aclose(self) -> None:
        return None


async def test_model_failure_tells_the_sender_only(any_server: LiveServer) -> None:
    any_server.app[ROOMS].llm = BrokenLLM()
    async with clients(any_server, "fail", "fail") as (a, b):
        await a.send({"hd": {"event": "llm.invoke", "role": "A"}, "bd": {"text": "질문"}})
        assert (await a.next())["hd"]["event"] == "llm.invoke"
        assert (await b.next())["hd"]["event"] == "llm.invoke"
        assert await a.next() == {
            "hd": {"event": "error"},
            "bd": {"text": "AI 응답 생성에 실패했습니다"},
        }
        await prove_quiet(b, a)
    stored = (await history(any_server, "fail"))["messages"]
    assert [m["participant"] for m in stored] == ["A", "probe"]  # the question stays stored


MALFORMED: list[tuple[Any, str]] = [
    ("not json", "잘못된 요청입니다: payload"),
    ([1, 2], "잘못된 요청입니다: payload"),
    (json.dumps("a JSON string"), "잘못된 요청입니다: payload"),
    ({"bd": {"text": "x"}}, "잘못된 요청입니다: hd"),
    ({"hd": "chat.message", "bd": {"text": "x"}}, "잘못된 요청입니다: hd"),
    ({"hd": {"event": "chat.message"}}, "잘못된 요청입니다: bd"),
    ({"hd": {"event": "chat.message"}, "bd": ["x"]}, "잘못된 요청입니다: bd"),
    ({"hd": {"event": "chat.delete"}, "bd": {"text": "x"}}, "잘못된 요청입니다: hd.event"),
    ({"hd": {"role": "A"}, "bd": {"text": "x"}}, "잘못된 요청입니다: hd.event"),
    ({"hd": {"event": "llm.response"}, "bd": {"text": "x"}}, "잘못된 요청입니다: hd.event"),
    (
        {"hd": {"event": "chat.message", "role": 7}, "bd": {"text": "x"}},
        "잘못된 요청입니다: hd.role",
    ),
    (
        {"hd": {"event": "chat.message", "role": "r" * 33}, "bd": {"text": "x"}},
        "잘못된 요청입니다: hd.role",
    ),
    (
        {"hd": {"event": "chat.message", "timestamp": 1}, "bd": {"text": "x"}},
        "잘못된 요청입니다: hd.timestamp",
    ),
    ({"hd": {"event": "chat.message"}, "bd": {"text": 5}}, "잘못된 요청입니다: bd.text"),
    ({"hd": {"event": "chat.message"}, "bd": {}}, "잘못된 요청입니다: bd.text"),
    ({"hd": {"event": "llm.invoke"}, "bd": {"prompt": ["x"]}}, "잘못된 요청입니다: bd.prompt"),
    ({"hd": {"event": "chat.message"}, "bd": {"text": "  "}}, "메시지가 비어 있습니다"),
    (
        {"hd": {"event": "chat.message"}, "bd": {"text": "가" * 2001}},
        "메시지가 너무 깁니다 (최대 2000자)",
    ),
    (
        {"hd": {"event": "llm.invoke"}, "bd": {"text": "x", "prompt": "가" * 2001}},
        "메시지가 너무 깁니다 (최대 2000자)",
    ),
]


async def test_malformed_frames_get_an_error_and_nothing_is_stored(any_server: LiveServer) -> None:
    async with clients(any_server, "bad", "bad") as (a, b):
        for frame, reason in MALFORMED:
            await (a.ws.send_str(frame) if isinstance(frame, str) else a.send(frame))
            assert await a.next() == {"hd": {"event": "error"}, "bd": {"text": reason}}, frame
        await a.ws.send_bytes(b"\x00\x01")
        assert (await a.next())["bd"]["text"] == "잘못된 요청입니다: payload"
        await prove_quiet(b, a)  # b saw none of a's errors; a's socket still works
    assert await RoomMessage.filter(session_id="bad").count() == 1  # the probe only


@pytest.mark.parametrize("query", ["", "?sid=", "?sid=has%20space", "?sid=" + "x" * 129])
async def test_a_bad_sid_is_refused_with_an_error_frame(server: LiveServer, query: str) -> None:
    url = server.url.replace("http://", "ws://") + "/v1/session/chat" + query
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url) as ws:
            message = await ws.receive(timeout=10)
            assert json.loads(message.data) == {
                "hd": {"event": "error"},
                "bd": {"text": "잘못된 요청입니다: sid"},
            }
            assert (await ws.receive(timeout=10)).type == aiohttp.WSMsgType.CLOSE
            assert ws.close_code == 1008
        async with http.get(server.url + "/v1/session/chat?sid=ok") as resp:
            assert resp.status == 400  # not a websocket upgrade
            assert await resp.json() == {"message": "잘못된 요청입니다: websocket"}


async def test_history_route(any_server: LiveServer) -> None:
    async with clients(any_server, "hist") as (a,):
        for n in range(5):
            await a.say(f"메시지 {n}", role="AB"[n % 2])
            await a.next()
    body = await history(any_server, "hist")
    assert body["sessionId"] == "hist"
    messages = body["messages"]
    assert [m["body"]["bd"]["text"] for m in messages] == [f"메시지 {n}" for n in range(5)]
    assert [m["participant"] for m in messages] == ["A", "B", "A", "B", "A"]
    for m in messages:
        assert set(m) == {"id", "participant", "body", "createdAt"}
        assert ISO_MS.match(m["createdAt"])
    assert [m["createdAt"] for m in messages] == sorted(m["createdAt"] for m in messages)
    last_two = (await history(any_server, "hist", "?limit=2"))["messages"]
    assert last_two == messages[-2:]
    assert await history(any_server, "never-used") == {"sessionId": "never-used", "messages": []}
    async with aiohttp.ClientSession() as http:
        for path in ("/api/chat/history/hist?limit=0", "/api/chat/history/hist?limit=x"):
            async with http.get(any_server.url + path) as resp:
                assert resp.status == 400
                assert await resp.json() == {"message": "잘못된 요청입니다: limit"}
        async with http.get(any_server.url + "/api/chat/history/bad.sid") as resp:
            assert resp.status == 400
            assert await resp.json() == {"message": "잘못된 요청입니다: sid"}
        headers = {"Origin": "http://example.test"}
        async with http.get(any_server.url + "/api/chat/history/hist", headers=headers) as resp:
            assert resp.headers["Access-Control-Allow-Origin"] in ("*", "http://example.test")
        async with http.get(any_server.url + "/api/docs/openapi.json") as resp:
            operation = (await resp.json())["paths"]["/api/chat/history/{sid}"]["get"]
            assert operation["tags"] == ["chat"]


async def test_room_messages_table(any_server: LiveServer) -> None:
    conn = db.connection()
    if any_server.settings.database_url.startswith("sqlite"):
        _, rows = await conn.execute_query("PRAGMA table_info(room_messages)")
        assert {r["name"] for r in rows} == {
            "id",
            "session_id",
            "participant",
            "body",
            "created_at",
        }
        return
    if conn.capabilities.dialect == "postgres":  # types: tests/test_postgres.py
        assert set(await postgres_columns("room_messages")) == {
            "id",
            "session_id",
            "participant",
            "body",
            "created_at",
        }
        return
    _, rows = await conn.execute_query(
        "SELECT column_name AS c, data_type AS d, character_maximum_length AS n, "
        "datetime_precision AS p, column_key AS k FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name = 'room_messages'"
    )
    columns = {r["c"]: r for r in rows}
    assert set(columns) == {"id", "session_id", "participant", "body", "created_at"}
    assert (columns["id"]["d"], columns["id"]["n"], columns["id"]["k"]) == ("varchar", 36, "PRI")
    assert (columns["session_id"]["n"], columns["session_id"]["k"]) == (128, "MUL")
    assert columns["participant"]["n"] == 32
    assert columns["body"]["d"] in ("json", "longtext")  # MariaDB: longtext + json_valid
    assert columns["created_at"]["p"] == 6


@asynccontextmanager
async def redis_room(sqlite_url: str) -> AsyncIterator[tuple[LiveServer, Redis, str]]:
    """The app with the Redis Stream log, a client, and a fresh sid whose key is deleted."""
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        try:
            await redis.ping()
            reachable = True
        except Exception:
            reachable = False
        require(reachable, f"Redis not reachable at {REDIS_URL}")
        sid = f"test_room_{uuid.uuid4().hex[:12]}"
        try:
            async with serve(make_settings(sqlite_url, redis_url=REDIS_URL)) as live:
                yield live, redis, sid
        finally:
            await redis.delete(f"chat:session:{sid}")
    finally:
        await redis.aclose()


async def stream_entries(redis: Redis, sid: str) -> list[tuple[str, dict[str, str]]]:
    """XRANGE of the room's stream, as `check_redis_chat.py` reads it."""
    rows: Any = await redis.xrange(f"chat:session:{sid}")
    return list(rows)


async def test_redis_stream_backend(sqlite_url: str) -> None:
    async with redis_room(sqlite_url) as (live, redis, sid):
        async with clients(live, sid, sid) as (a, b):
            await a.say("첫 메시지", role="A")
            await b.say("두번째", role="B")
            await a.send(
                {"hd": {"event": "llm.invoke", "role": "A"}, "bd": {"text": WELFARE_QUESTION}}
            )
            frames = await b.until("llm.response")
            await a.until("llm.response")
        rows = await stream_entries(redis, sid)
        assert [fields["participant"] for _, fields in rows] == ["A", "B", "A", "llm"]
        bodies = [json.loads(fields["body"]) for _, fields in rows]
        assert bodies[:3] == frames[:3] and bodies[3] == frames[-1]
        stored = (await history(live, sid))["messages"]
        assert [m["id"] for m in stored] == [entry_id for entry_id, _ in rows]
        assert [m["body"] for m in stored] == bodies
        assert all(ISO_MS.match(m["createdAt"]) for m in stored)
        assert await RoomMessage.filter(session_id=sid).count() == 0  # Redis, not the database


async def test_seed_document_clients(sqlite_url: str) -> None:
    """The seed's Postman frames and its test/check scripts, against the Redis Stream."""
    async with redis_room(sqlite_url) as (live, redis, sid):
        seed_frames: list[dict[str, Any]] = [
            {"hd": {"event": "chat.message", "role": "A"}, "bd": {"text": "안녕하세요!"}},
            {
                "hd": {"event": "chat.message", "role": "B", "timestamp": "2025-11-22T15:30:00Z"},
                "bd": {"text": "메시지"},
            },
            {"hd": {"event": "chat.message", "role": "A"}, "bd": {"text": "한글, 日本語, 中文"}},
            {"hd": {"event": "chat.message", "role": "B"}, "bd": {"text": "반갑습니다! 😊"}},
            {"hd": {"event": "chat.message"}, "bd": {"text": "메시지"}},  # "role 없음"
        ]
        async with clients(live, sid, sid) as (a, b):
            for frame in seed_frames:
                await a.send(frame)
                for room in (a, b):
                    received = await room.next()
                    assert received["bd"] == frame["bd"]
                    assert received["hd"]["event"] == "chat.message"
                    assert received["hd"]["role"] == frame["hd"].get("role", "user")
            # Phase 1 of the seed: `bd.prompt` asks the model, the answer is stored as `llm`
            await b.send(
                {"hd": {"event": "chat.message", "role": "B"}, "bd": {"prompt": WELFARE_QUESTION}}
            )
            reply = (await a.until("llm.response"))[-1]
            assert reply["hd"]["event"] == "llm.response" and reply["hd"]["role"] == "llm"
        # check_redis_chat.py: XRANGE, `participant`, `body` as JSON text, counts per participant
        rows = await stream_entries(redis, sid)
        participants = [fields["participant"] for _, fields in rows]
        assert Counter(participants[:5]) == {"A": 2, "B": 2, "user": 1}
        assert participants[5:] == ["B", "llm"]
        for entry_id, fields in rows:
            assert re.fullmatch(r"\d+-\d+", entry_id)
            body = json.loads(fields["body"])
            assert set(body) == {"hd", "bd"}
        assert [json.loads(f["body"])["bd"] for _, f in rows[:5]] == [f["bd"] for f in seed_frames]


async def test_invocations_over_the_rate_limit_are_refused(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url, max_ai_requests_per_minute=1)) as live:
        live.app[ROOMS].llm = ScriptedLLM()
        async with clients(live, "busy") as (a,):
            await a.send({"hd": {"event": "llm.invoke", "role": "A"}, "bd": {"text": "하나"}})
            await a.until("llm.response")
            await a.send({"hd": {"event": "llm.invoke", "role": "A"}, "bd": {"text": "둘"}})
            assert await a.next() == {
                "hd": {"event": "error"},
                "bd": {"text": "요청이 너무 많습니다. 잠시 후 다시 시도해 주세요"},
            }
            await a.say("그냥 말하기는 됩니다", role="A")  # only asking the model is limited
            assert (await a.next())["bd"]["text"] == "그냥 말하기는 됩니다"
        stored = (await history(live, "busy"))["messages"]
        assert [m["participant"] for m in stored] == ["A", "llm", "A"]


async def test_an_unreachable_redis_is_a_temporary_error(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url, redis_url="redis://127.0.0.1:1/0")) as live:
        async with clients(live, "no-redis") as (a,):
            await a.say("안녕", role="A")
            assert await a.next() == {
                "hd": {"event": "error"},
                "bd": {"text": "일시적인 오류가 발생했습니다. 잠시 후 다시 시도해 주세요"},
            }
            await a.say("아직 연결돼 있나요", role="A")  # the socket keeps serving
            assert (await a.next())["hd"]["event"] == "error"
        async with aiohttp.ClientSession() as http:
            async with http.get(live.url + "/api/chat/history/no-redis") as resp:
                assert resp.status == 503
                assert (await resp.json())["message"].startswith("일시적인 오류")


async def test_shutdown_closes_room_sockets(sqlite_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with serve(make_settings(sqlite_url)) as live:
            ws = await http.ws_connect(room_url(live, "closing"))
            room = Room(ws)
            await room.say("곧 닫힘", role="A")
            await room.next()
        closing = await ws.receive(timeout=10)  # queued before the server went away
        assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1001
        await ws.close()
