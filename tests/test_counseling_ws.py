"""CONTRACT §5 `/ws/session/{session_id}` over a real websocket, on SQLite and on MySQL."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from yarl import URL

from models.counseling import Conversation
from server import db
from server.ai.base import LLMEvent, PromptMessage, ProviderError, TextDelta, ToolSpec
from server.chat import clock
from server.counseling import EMOTIONS, Emotion, system_prompt
from server.counseling.offline import OFFLINE_NOTE
from server.keys import COUNSELING, LLM_CLIENT
from server.texts import (
    AI_FAILED,
    COUNSELING_INVALID_SESSION,
    COUNSELING_MESSAGE_EMPTY,
    COUNSELING_RATE_LIMITED,
    invalid_field,
    message_too_long,
)
from tests.conftest import LiveServer, make_settings, postgres_columns, require, serve
from tests.support.fakes.gemini_server import running_fake_gemini

TS = 1704902400000
END = ("ai_stream_complete", "ai_stream_error")


class ScriptedLLM:
    """Records every prompt; replies `reply N` in many small deltas, optionally after `gate`."""

    name = "scripted"

    def __init__(self, tokens: int = 20, fail_after: int | None = None) -> None:
        self.prompts: list[list[PromptMessage]] = []
        self.tokens = tokens
        self.fail_after = fail_after
        self.gate: asyncio.Event | None = None
        self.called = asyncio.Event()

    def reply(self, n: int) -> str:
        return "".join(f"응답{n}-{i} " for i in range(self.tokens))

    async def stream(
        self, messages: Sequence[PromptMessage], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[LLMEvent]:
        assert not tools  # a counselor, not a search assistant
        self.prompts.append(list(messages))
        self.called.set()
        if self.gate is not None:
            await self.gate.wait()
        for i, piece in enumerate(self.reply(len(self.prompts)).split(" ")[:-1]):
            if self.fail_after is not None and i == self.fail_after:
                raise ProviderError("scripted failure")
            yield TextDelta(piece + " ")

    async def aclose(self) -> None:
        return None


def scripted(live: LiveServer, **options: Any) -> ScriptedLLM:
    llm = ScriptedLLM(**options)
    live.app[COUNSELING].llm = llm
    return llm


def ws_url(live: LiveServer, session_id: str) -> URL:
    return URL(f"{live.url.replace('http', 'ws', 1)}/ws/session/{session_id}", encoded=True)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def request(message: Any = "요즘 회사에서 스트레스를 많이 받아요", **data: Any) -> dict[str, Any]:
    return {
        "type": "request_ai_response",
        "data": {"message": message, "emotion": "anxious", "timestamp": TS, **data},
    }


async def next_frame(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    frame = json.loads(await ws.receive_str(timeout=10))
    assert isinstance(frame, dict) and set(frame) == {"type", "data"}
    return frame


async def one_reply(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    """The frames of one request: until ai_stream_complete or ai_stream_error."""
    frames = [await next_frame(ws)]
    while frames[-1]["type"] not in END:
        frames.append(await next_frame(ws))
    return frames


async def ask(ws: aiohttp.ClientWebSocketResponse, *args: Any, **data: Any) -> list[dict[str, Any]]:
    await ws.send_json(request(*args, **data))
    return await one_reply(ws)


def streamed_text(frames: list[dict[str, Any]]) -> str:
    assert frames[0] == {"type": "ai_stream_begin", "data": {}}
    assert frames[-1] == {"type": "ai_stream_complete", "data": {}}
    chunks = frames[1:-1]
    assert chunks and all(f["type"] == "ai_stream_chunk" for f in chunks)
    assert all(set(f["data"]) == {"chunk"} for f in chunks)  # `chunk`, never `text`
    return "".join(f["data"]["chunk"] for f in chunks)


def error(message: str) -> list[dict[str, Any]]:
    return [{"type": "ai_stream_error", "data": {"error": message}}]


async def test_reply_streams_and_the_exchange_is_stored(
    any_server: LiveServer, http: aiohttp.ClientSession
) -> None:
    llm = scripted(any_server, tokens=60)
    async with http.ws_connect(ws_url(any_server, "test_session_123")) as ws:
        text = streamed_text(await ask(ws))
    assert text == llm.reply(1)
    [row] = await Conversation.filter(session_id="test_session_123")
    assert str(uuid.UUID(row.id, version=4)) == row.id
    assert row.user_message == "요즘 회사에서 스트레스를 많이 받아요"
    assert row.ai_response == text
    assert row.emotion == "anxious"
    assert row.timestamp == TS
    assert isinstance(row.created_at, datetime) and row.created_at.tzinfo is not None
    assert llm.prompts[0] == [
        PromptMessage("system", system_prompt("anxious")),
        PromptMessage("user", "요즘 회사에서 스트레스를 많이 받아요"),
    ]


async def test_deltas_are_coalesced_into_few_frames(
    sqlite_url: str, http: aiohttp.ClientSession
) -> None:
    async with serve(make_settings(sqlite_url, delta_flush_ms=60_000)) as live:
        llm = scripted(live, tokens=200)
        async with http.ws_connect(ws_url(live, "s1")) as ws:
            frames = await ask(ws)
    # no sentence ends in the reply and a long interval: one frame, flushed at the end
    assert len(frames) == 3
    assert streamed_text(frames) == llm.reply(1)


async def test_context_is_the_last_ten_exchanges_oldest_first(
    any_server: LiveServer, http: aiohttp.ClientSession
) -> None:
    for n in range(12):
        await Conversation.create(
            session_id="s1",
            user_message=f"질문 {n}",
            ai_response=f"답 {n}",
            created_at=clock.next_timestamp(),
        )
    await Conversation.create(
        session_id="other", user_message="x", ai_response="y", created_at=clock.next_timestamp()
    )
    llm = scripted(any_server)
    async with http.ws_connect(ws_url(any_server, "s1")) as ws:
        streamed_text(await ask(ws, "새 질문", emotion=None))
        streamed_text(await ask(ws, "그 다음 질문", emotion="happy"))
    first, second = llm.prompts
    assert first[0] == PromptMessage("system", system_prompt("neutral"))
    pairs = [(m.role, m.content) for m in first[1:]]
    expected = [p for n in range(2, 12) for p in (("user", f"질문 {n}"), ("assistant", f"답 {n}"))]
    assert pairs == [*expected, ("user", "새 질문")]
    assert second[0] == PromptMessage("system", system_prompt("happy"))
    assert [(m.role, m.content) for m in second[-3:]] == [
        ("user", "새 질문"),
        ("assistant", llm.reply(1)),
        ("user", "그 다음 질문"),
    ]
    assert len(second) == 1 + 2 * 10 + 1


async def test_rate_limit_is_ten_per_minute_per_session(
    any_server: LiveServer, http: aiohttp.ClientSession
) -> None:
    scripted(any_server, tokens=2)
    async with (
        http.ws_connect(ws_url(any_server, "busy")) as first,
        http.ws_connect(ws_url(any_server, "busy")) as same_session,
        http.ws_connect(ws_url(any_server, "calm")) as other_session,
    ):
        for n in range(10):
            streamed_text(await ask(first if n % 2 else same_session, f"질문 {n}"))
        assert await ask(first, "열한 번째") == error(COUNSELING_RATE_LIMITED)
        assert await ask(same_session, "열두 번째") == error(COUNSELING_RATE_LIMITED)
        streamed_text(await ask(other_session))
    assert await Conversation.filter(session_id="busy").count() == 10


async def test_message_size_limits(any_server: LiveServer, http: aiohttp.ClientSession) -> None:
    llm = scripted(any_server, tokens=2)
    async with http.ws_connect(ws_url(any_server, "sizes")) as ws:
        assert streamed_text(await ask(ws, "가" * 2000)) == llm.reply(1)
        assert await ask(ws, "가" * 2001) == error(message_too_long(2000))
        assert await ask(ws, "가" * 2001) == error("메시지가 너무 깁니다 (최대 2000자)")
        assert await ask(ws, "") == error(COUNSELING_MESSAGE_EMPTY)
        assert await ask(ws, " \n\t　") == error(COUNSELING_MESSAGE_EMPTY)
        assert await ask(ws, None) == error(COUNSELING_MESSAGE_EMPTY)
        streamed_text(await ask(ws, "아직 들려요?"))
    stored = await Conversation.filter(session_id="sizes").values_list("user_message", flat=True)
    assert sorted(stored, key=len) == ["아직 들려요?", "가" * 2000]


@pytest.mark.parametrize(
    "session_id", ["..%2Fx", "../x", "x" * 129, "a%20b", "", "a/b", "%ED%95%9C%EA%B8%80"]
)
async def test_invalid_session_ids_are_refused_cleanly(
    server: LiveServer, http: aiohttp.ClientSession, session_id: str
) -> None:
    async with http.ws_connect(ws_url(server, session_id)) as ws:
        assert [await next_frame(ws)] == error(COUNSELING_INVALID_SESSION)
        closing = await ws.receive(timeout=10)
        assert closing.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1008
    assert await Conversation.all().count() == 0


async def test_widest_session_id_is_accepted(
    server: LiveServer, http: aiohttp.ClientSession
) -> None:
    session_id = "Az09_-" + "x" * 122
    async with http.ws_connect(ws_url(server, session_id)) as ws:
        streamed_text(await ask(ws))
    assert await Conversation.filter(session_id=session_id).count() == 1


async def test_malformed_frames_get_an_error_and_the_socket_keeps_serving(
    any_server: LiveServer, http: aiohttp.ClientSession
) -> None:
    scripted(any_server, tokens=2)
    cases: list[tuple[str | bytes, str]] = [
        ("not json", invalid_field("payload")),
        ("[1, 2]", invalid_field("payload")),
        ('"request_ai_response"', invalid_field("payload")),
        ("[" * 5000, invalid_field("payload")),
        (b"\x00\x01", invalid_field("payload")),
        ('{"data": {"message": "hi"}}', invalid_field("type")),
        ('{"type": 5}', invalid_field("type")),
        ('{"type": "request_ai_response"}', invalid_field("data")),
        ('{"type": "request_ai_response", "data": "hi"}', invalid_field("data")),
        ('{"type": "request_ai_response", "data": {"message": 123}}', invalid_field("message")),
        ('{"type": "request_ai_response", "data": {"message": ["a"]}}', invalid_field("message")),
    ]
    async with http.ws_connect(ws_url(any_server, "bad-frames")) as ws:
        for raw, message in cases:
            await (ws.send_bytes(raw) if isinstance(raw, bytes) else ws.send_str(raw))
            assert await one_reply(ws) == error(message), raw
        streamed_text(await ask(ws))
    assert await Conversation.filter(session_id="bad-frames").count() == 1


async def test_other_message_types_are_ignored(
    any_server: LiveServer, http: aiohttp.ClientSession
) -> None:
    scripted(any_server, tokens=2)
    async with http.ws_connect(ws_url(any_server, "ignored")) as ws:
        await ws.send_json({"type": "emotion_update", "data": {"emotion": "sad"}})
        await ws.send_json({"type": "vad_metrics", "data": {"speechRate": 1.2}})
        await ws.send_json({"type": "anything", "data": None})
        await ws.send_json({"type": "request_ai_response "})  # not the request type: ignored
        # the very next frame is the request's: nothing was sent for the ignored ones
        streamed_text(await ask(ws))


async def test_emotion_and_timestamp_values(
    server: LiveServer, http: aiohttp.ClientSession
) -> None:
    llm = scripted(server, tokens=2)
    cases: list[tuple[Any, Any, Emotion | None, int | None]] = [
        ("SAD ", TS, "sad", TS),
        ("confused", "2024-01-10T16:00:00.000Z", None, TS),
        (None, "1704902400000", None, TS),
        (7, 1704902400000.9, None, TS),
        ("fearful", "어제", "fearful", None),
        ("happy", True, "happy", None),
        ("happy", -5, "happy", None),
    ]
    async with http.ws_connect(ws_url(server, "values")) as ws:
        for emotion, timestamp, _, _ in cases:
            streamed_text(await ask(ws, emotion=emotion, timestamp=timestamp))
        await ws.send_json({"type": "request_ai_response", "data": {"message": "안녕"}})
        streamed_text(await one_reply(ws))
    rows = await Conversation.filter(session_id="values").order_by("created_at")
    expected = [(e, t) for _, _, e, t in cases] + [(None, None)]
    assert [(r.emotion, r.timestamp) for r in rows] == expected
    assert [p[0].content for p in llm.prompts] == [system_prompt(e) for e, _ in expected]


def test_eight_korean_prompts_ask_for_two_or_three_sentences() -> None:
    prompts = {system_prompt(e) for e in EMOTIONS}
    assert len(EMOTIONS) == 8 and len(prompts) == 8
    assert all("2-3문장" in p and "상담사" in p for p in prompts)
    assert system_prompt(None) == system_prompt("neutral")


async def test_ai_failure_is_an_error_and_nothing_is_stored(
    any_server: LiveServer, http: aiohttp.ClientSession
) -> None:
    llm = scripted(any_server, tokens=10, fail_after=3)
    async with http.ws_connect(ws_url(any_server, "fails")) as ws:
        frames = await ask(ws)
        assert frames[0]["type"] == "ai_stream_begin"
        assert frames[-1] == error(AI_FAILED)[0]
        assert all(f["type"] == "ai_stream_chunk" for f in frames[1:-1])
        llm.fail_after = None
        streamed_text(await ask(ws))
    assert await Conversation.filter(session_id="fails").count() == 1


async def test_requests_are_answered_in_order_across_sockets_of_a_session(
    any_server: LiveServer, http: aiohttp.ClientSession
) -> None:
    llm = scripted(any_server, tokens=3)
    llm.gate = asyncio.Event()
    async with (
        http.ws_connect(ws_url(any_server, "shared")) as first,
        http.ws_connect(ws_url(any_server, "shared")) as second,
    ):
        await first.send_json(request("하나"))
        await first.send_json(request("둘"))
        await llm.called.wait()  # "하나" holds the session's turn
        await second.send_json(request("셋"))
        llm.gate.set()
        answers = [streamed_text(await one_reply(first)) for _ in range(2)]
        streamed_text(await one_reply(second))
    rows = await Conversation.filter(session_id="shared").order_by("created_at")
    replies = {r.user_message: r.ai_response for r in rows}
    assert answers == [replies["하나"], replies["둘"]]  # one socket: in the order sent
    # one turn of the session at a time: each saw every exchange stored before it
    asked = [[m.content for m in p if m.role == "user"] for p in llm.prompts]
    assert asked[0] == ["하나"]
    assert asked[1][:1] == ["하나"] and asked[2][:2] == asked[1]
    assert {asked[1][1], asked[2][2]} == {"둘", "셋"}
    assert [r.user_message for r in rows] == asked[2]


async def test_a_reply_is_stored_when_the_client_leaves_mid_stream(
    server: LiveServer, http: aiohttp.ClientSession
) -> None:
    llm = scripted(server, tokens=3)
    llm.gate = asyncio.Event()
    async with http.ws_connect(ws_url(server, "gone")) as ws:
        await ws.send_json(request("떠나기 전에"))
        await ws.send_json(request("대답 못 들을 질문"))
        assert (await next_frame(ws))["type"] == "ai_stream_begin"
    async with http.ws_connect(ws_url(server, "gone")) as again:
        await again.send_json(request("돌아왔어요"))
        llm.gate.set()
        streamed_text(await one_reply(again))
    # the turn in flight was finished and stored; the request still queued was dropped
    assert [[(m.role, m.content) for m in p[1:]] for p in llm.prompts] == [
        [("user", "떠나기 전에")],
        [("user", "떠나기 전에"), ("assistant", llm.reply(1)), ("user", "돌아왔어요")],
    ]
    stored = await Conversation.filter(session_id="gone").order_by("created_at")
    assert [r.user_message for r in stored] == ["떠나기 전에", "돌아왔어요"]


async def test_offline_provider_answers_like_a_counselor(
    server: LiveServer, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(ws_url(server, "offline")) as ws:
        first = streamed_text(await ask(ws, "안녕하세요, 요즘 우울해요", emotion="sad"))
        second = streamed_text(await ask(ws, "잠이 잘 안 와요", emotion="sad"))
        crisis = streamed_text(await ask(ws, "그냥 다 끝내고 죽고 싶어요", emotion="sad"))
    assert first.startswith(OFFLINE_NOTE) and "속상" in first
    assert OFFLINE_NOTE not in second and second.endswith("?")
    assert "복지" not in first + second
    assert "109" in crisis


async def test_gemini_counsels_whenever_its_key_is_set(
    sqlite_url: str, http: aiohttp.ClientSession
) -> None:
    async with (
        running_fake_gemini() as fake,
        serve(
            make_settings(sqlite_url, gemini_api_key="test-key", gemini_base_url=fake.url)
        ) as live,
    ):
        assert live.app[LLM_CLIENT].name == "local"  # AI_PROVIDER=local for the rest
        assert live.app[COUNSELING].llm.name == "gemini"
        async with http.ws_connect(ws_url(live, "gemini")) as ws:
            assert streamed_text(await ask(ws, "첫 질문", emotion="sad")) == "답변: 첫 질문"
            assert streamed_text(await ask(ws, "두 번째 질문")) == "답변: 두 번째 질문"
    body = fake.requests[-1].body
    assert "tools" not in body
    assert body["systemInstruction"]["parts"] == [{"text": system_prompt("anxious")}]
    assert [(c["role"], c["parts"][0]["text"]) for c in body["contents"]] == [
        ("user", "첫 질문"),
        ("model", "답변: 첫 질문"),
        ("user", "두 번째 질문"),
    ]


async def test_a_configured_gemini_is_shared(sqlite_url: str) -> None:
    settings = make_settings(
        sqlite_url, ai_provider="gemini", gemini_api_key="k", gemini_base_url="http://127.0.0.1:9"
    )
    async with serve(settings) as live:
        assert live.app[COUNSELING].llm is live.app[LLM_CLIENT]


async def test_logs_hold_at_most_fifty_characters_of_a_message(
    server: LiveServer, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    # INFO, the default LOG_LEVEL: at DEBUG the database drivers log SQL parameters
    caplog.set_level(logging.INFO)
    secret = "가" * 50 + "비밀"
    async with http.ws_connect(ws_url(server, "logs")) as ws:
        for _ in range(10):
            streamed_text(await ask(ws, secret))
        assert await ask(ws, secret) == error(COUNSELING_RATE_LIMITED)  # logged too
    logged = [str(vars(r)) + r.getMessage() for r in caplog.records]
    assert any("가" * 50 in line for line in logged)
    assert not any("비밀" in line for line in logged)


async def test_server_pings_the_socket(sqlite_url: str, http: aiohttp.ClientSession) -> None:
    async with serve(make_settings(sqlite_url, ws_heartbeat_seconds=0.05)) as live:
        async with http.ws_connect(ws_url(live, "alive"), autoping=False) as ws:
            assert (await ws.receive(timeout=10)).type is aiohttp.WSMsgType.PING


async def test_shutdown_closes_open_sockets(sqlite_url: str, http: aiohttp.ClientSession) -> None:
    async with serve(make_settings(sqlite_url)) as live:
        ws = await http.ws_connect(ws_url(live, "bye"))
        streamed_text(await ask(ws))
        closing = asyncio.create_task(ws.receive(timeout=10))
    message = await closing
    assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1001)  # going away
    await ws.close()


async def test_the_source_documents_client_works_unchanged(
    server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    require(importlib.util.find_spec("websockets") is not None, "websockets is not installed")
    import websockets

    uri = ws_url(server, "test_session_123").human_repr()

    # --- the seed's test client, as written (only `uri` points at this server) ---
    async def test_ai_chat() -> None:
        async with websockets.connect(uri) as websocket:
            await websocket.send(
                json.dumps(
                    {
                        "type": "request_ai_response",
                        "data": {
                            "message": "안녕하세요, 요즘 우울해요",
                            "emotion": "sad",
                            "timestamp": 1704902400000,
                        },
                    }
                )
            )
            print("✅ Request sent")
            full_response = ""
            while True:
                response = await websocket.recv()
                message = json.loads(response)
                if message["type"] == "ai_stream_begin":
                    print("🟢 Stream started")
                elif message["type"] == "ai_stream_chunk":
                    chunk = message["data"]["chunk"]
                    full_response += chunk
                    print(f"📝 Chunk: {chunk}")
                elif message["type"] == "ai_stream_complete":
                    print(f"✅ Stream complete\n\nFull response:\n{full_response}")
                    break
                elif message["type"] == "ai_stream_error":
                    print(f"❌ Error: {message['data']['error']}")
                    break

    await asyncio.wait_for(test_ai_chat(), 30)
    out = capsys.readouterr().out
    [row] = await Conversation.filter(session_id="test_session_123")
    assert out.startswith("✅ Request sent\n🟢 Stream started\n📝 Chunk: ")
    assert out.endswith(f"✅ Stream complete\n\nFull response:\n{row.ai_response}\n")
    assert "❌" not in out


async def test_table_columns(any_server: LiveServer) -> None:
    conn = db.connection()
    if any_server.settings.database_url.startswith("sqlite"):
        _, rows = await conn.execute_query("PRAGMA table_info(conversations)")
        assert [r["name"] for r in rows] == [
            "id",
            "session_id",
            "user_message",
            "ai_response",
            "emotion",
            "timestamp",
            "created_at",
        ]
        return
    if conn.capabilities.dialect == "postgres":  # types: tests/test_postgres.py
        assert len(await postgres_columns("conversations")) == 7
        return
    _, rows = await conn.execute_query(
        "SELECT column_name AS c, data_type AS d, character_maximum_length AS n, "
        "datetime_precision AS p, column_key AS k, is_nullable AS nullable "
        "FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name = 'conversations'"
    )
    found = {r["c"]: (r["d"], r["n"], r["k"], r["nullable"]) for r in rows}
    assert found == {
        "id": ("varchar", 36, "PRI", "NO"),
        "session_id": ("varchar", 128, "MUL", "NO"),
        "user_message": ("text", 65535, "", "NO"),
        "ai_response": ("text", 65535, "", "NO"),
        "emotion": ("varchar", 20, "", "YES"),
        "timestamp": ("bigint", None, "", "YES"),
        "created_at": ("datetime", None, "", "NO"),
    }
    assert next(r["p"] for r in rows if r["c"] == "created_at") >= 3
