"""A message at risk gets the crisis lines on every protocol, with the offline provider and
with fake OpenAI/Gemini servers whose replies never mention them; a saying does not; the
stored metadata, `/metrics` and the operator's webhook record it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from models import ChatMessage
from server.ai.audio import wav_bytes
from server.config import Settings
from server.keys import VOICE_CONVERSATION
from server.safety.replies import CRISIS_INSTRUCTION, REQUIRED_LINES
from tests.conftest import LiveServer, fake_openai_settings, make_settings, serve
from tests.support.fakes.gemini_server import running_fake_gemini
from tests.support.fakes.openai_server import running_fake_openai
from tests.support.sio import joined_chat_client
from tests.support.waiting import until

AT_RISK = "요즘 너무 힘들어서 죽고 싶어요"
SAYING = "힘들어 죽겠네 노인 일자리 있나요"
AGENT_PROJECT = "project_001"  # the shipped agents.json: 집사 of project_001
SUICIDE_LINES = REQUIRED_LINES["suicide"]
CRISIS_MARK = CRISIS_INSTRUCTION.split("]")[0] + "]"  # "[안전 안내]", in the model's prompt


def has_lines(text: str, lines: tuple[str, ...] = SUICIDE_LINES) -> bool:
    return all(line in text for line in lines)


class Receiver:
    """An operator's webhook endpoint on a port of its own."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.alerts.append(await request.json())
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    got = Receiver()
    app = web.Application()
    app.router.add_post("/hook", got.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    got.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield got
    await runner.cleanup()


async def flags(live: LiveServer, protocol: str, category: str = "suicide") -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{live.url}/metrics") as response:
        text = await response.text()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "mobok_safety_flags_total"
        and s.labels.get("protocol") == protocol
        and s.labels.get("category") == category
    )


Provider = Callable[[str], Any]


@asynccontextmanager
async def provider_server(name: str, database_url: str, **overrides: Any) -> AsyncIterator[Any]:
    """A live server whose model is `name`: local, or the fake OpenAI or Gemini server."""
    if name == "local":
        async with serve(make_settings(database_url, **overrides)) as live:
            yield live, None
    elif name == "openai":
        async with running_fake_openai() as fake:
            async with serve(fake_openai_settings(database_url, fake, **overrides)) as live:
                yield live, fake
    else:
        async with running_fake_gemini() as fake:
            settings = make_settings(
                database_url,
                ai_provider="gemini",
                gemini_api_key="test-key",
                gemini_base_url=fake.url,
                **overrides,
            )
            async with serve(settings) as live:
                yield live, fake


def model_prompts(fake: Any) -> list[str]:
    """The system prompts the fake model was sent."""
    if fake is None:
        return []
    if hasattr(fake, "requests") and fake.requests and isinstance(fake.requests[0], dict):
        return [str(r["messages"][0].get("content")) for r in fake.requests]
    return [
        str(((r.body.get("systemInstruction") or {}).get("parts") or [{}])[0].get("text"))
        for r in fake.requests
    ]


PROVIDERS = ["local", "openai", "gemini"]


# --- /chat -------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_chat_answers_a_message_at_risk_with_the_lines_first(
    provider: str, sqlite_url: str, receiver: Receiver
) -> None:
    async with provider_server(provider, sqlite_url, safety_webhook_url=receiver.url) as (
        live,
        fake,
    ):
        before = await flags(live, "/chat")
        client, session_id = await joined_chat_client(live.url)
        try:
            await client.call("send-message", {"sessionId": session_id, "message": AT_RISK})
            reply = await client.next("ai-message")
            first_chunk = await client.next("ai-message-chunk")
        finally:
            await client.close()
        assert has_lines(reply["content"]), reply["content"]
        assert has_lines(first_chunk["content"])  # the lines come first, before the model
        if fake is not None:
            assert "검색 결과" in reply["content"] or "답변" in reply["content"]  # the model too
            assert any(CRISIS_MARK in p for p in model_prompts(fake))
        rows = await ChatMessage.filter(session_id=session_id).order_by("created_at")
        user, answer = rows[1], rows[2]
        assert user.metadata and user.metadata["safety"] == {
            "category": "suicide",
            "level": "medium",
        }
        assert answer.metadata and answer.metadata["safety"]["category"] == "suicide"
        assert answer.content == reply["content"]
        assert await flags(live, "/chat") == before + 1
        await until(lambda: receiver.alerts, what="the webhook alert")
        alert = receiver.alerts[0]
        assert (alert["protocol"], alert["sessionId"], alert["category"]) == (
            "/chat",
            session_id,
            "suicide",
        )


async def test_chat_keeps_the_lines_when_the_model_fails(sqlite_url: str) -> None:
    async with running_fake_openai() as fake:
        fake.fail_status = 500
        async with serve(fake_openai_settings(sqlite_url, fake)) as live:
            client, session_id = await joined_chat_client(live.url)
            try:
                await client.call("send-message", {"sessionId": session_id, "message": AT_RISK})
                reply = await client.next("ai-message")
                assert await client.nothing("error")
            finally:
                await client.close()
    assert has_lines(reply["content"])


@pytest.mark.parametrize("provider", ["local", "openai"])
async def test_chat_a_saying_is_an_ordinary_question(provider: str, sqlite_url: str) -> None:
    async with provider_server(provider, sqlite_url) as (live, fake):
        before = await flags(live, "/chat")
        client, session_id = await joined_chat_client(live.url)
        try:
            await client.call("send-message", {"sessionId": session_id, "message": SAYING})
            reply = await client.next("ai-message")
        finally:
            await client.close()
        assert "109" not in reply["content"] and "1. " in reply["content"]
        rows = await ChatMessage.filter(session_id=session_id).order_by("created_at")
        assert all("safety" not in (r.metadata or {}) for r in rows)
        assert await flags(live, "/chat") == before
        if fake is not None:
            assert not any(CRISIS_MARK in p for p in model_prompts(fake))
            assert all("1577-0199" in p for p in model_prompts(fake))  # the risk paragraph


@pytest.mark.slow  # seconds of its own (a real call, a timeout, a retry schedule)
async def test_chat_with_a_webhook_that_is_down_still_answers(sqlite_url: str) -> None:
    settings: Settings = make_settings(sqlite_url, safety_webhook_url="http://127.0.0.1:9/hook")
    async with serve(settings) as live:
        client, session_id = await joined_chat_client(live.url)
        try:
            await client.call("send-message", {"sessionId": session_id, "message": AT_RISK})
            reply = await client.next("ai-message")
        finally:
            await client.close()
    assert has_lines(reply["content"])


# --- /ws/chat agents ---------------------------------------------------------------------


async def agent_reply(live: LiveServer, client_id: str, message: str) -> str:
    """One chat frame to the default agent, and the text of its start..end block."""
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{live.url}/ws/chat/{client_id}") as ws:
            await ws.send_json(
                {
                    "type": "chat",
                    "message": message,
                    "agent_name": "집사",
                    "project_id": AGENT_PROJECT,
                    "images": [],
                }
            )
            frames = []
            while not frames or frames[-1]["type"] not in ("end", "error"):
                frames.append(await ws.receive_json(timeout=15))
    assert frames[0] == {"type": "start"} and frames[-1] == {"type": "end"}, frames
    return "".join(f["content"] for f in frames if f["type"] == "response")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_agents_answer_a_message_at_risk_with_the_lines_first(
    provider: str, sqlite_url: str
) -> None:
    async with provider_server(provider, sqlite_url) as (live, fake):
        before = await flags(live, "/ws/chat", "violence")
        text = await agent_reply(live, "client-risk", "남편이 매일 때려요")
        assert has_lines(text, REQUIRED_LINES["violence"]) and text.startswith("지금 안전이")
        assert await flags(live, "/ws/chat", "violence") == before + 1
        if fake is not None:
            assert any(CRISIS_MARK in p for p in model_prompts(fake))
        ordinary = await agent_reply(live, "client-risk", SAYING)
        assert "1366" not in ordinary and "109" not in ordinary


async def test_agents_do_not_delegate_a_message_at_risk(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url)) as live:
        text = await agent_reply(live, "client-report", "/report 죽고 싶어요")
    assert has_lines(text)


# --- the room's llm turns ---------------------------------------------------------------


async def room_answer(live: LiveServer, sid: str, prompt: str) -> tuple[str, str]:
    """The streamed text and the final llm.response text of one llm.invoke."""
    url = live.url.replace("http://", "ws://") + f"/v1/session/chat?sid={sid}"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.send_json({"hd": {"event": "llm.invoke", "role": "A"}, "bd": {"text": prompt}})
        frames = [await ws.receive_json(timeout=15)]
        while frames[-1]["hd"]["event"] != "llm.response":
            frames.append(await ws.receive_json(timeout=15))
    streamed = "".join(f["bd"]["text"] for f in frames if f["hd"]["event"] == "llm.streaming")
    return streamed, frames[-1]["bd"]["text"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_rooms_answer_a_message_at_risk_with_the_lines_first(
    provider: str, sqlite_url: str
) -> None:
    async with provider_server(provider, sqlite_url) as (live, fake):
        before = await flags(live, "/v1/session/chat", "medical")
        streamed, final = await room_answer(live, "room-risk", "아버지가 쓰러졌는데 숨을 안 쉬어요")
        assert streamed == final and final.startswith("지금 바로 119에")
        assert await flags(live, "/v1/session/chat", "medical") == before + 1
        if fake is not None:
            assert any(CRISIS_MARK in p for p in model_prompts(fake))
        _, ordinary = await room_answer(live, "room-risk", SAYING)
        assert "119에" not in ordinary


# --- /ws/session counseling -------------------------------------------------------------


async def counsel(live: LiveServer, session_id: str, message: str) -> str:
    url = live.url.replace("http", "ws", 1) + f"/ws/session/{session_id}"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.send_json(
            {
                "type": "request_ai_response",
                "data": {"message": message, "emotion": "sad", "timestamp": 1},
            }
        )
        frames = [await ws.receive_json(timeout=15)]
        while frames[-1]["type"] not in ("ai_stream_complete", "ai_stream_error"):
            frames.append(await ws.receive_json(timeout=15))
    assert frames[-1]["type"] == "ai_stream_complete", frames
    return "".join(f["data"]["chunk"] for f in frames if f["type"] == "ai_stream_chunk")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_counseling_answers_a_message_at_risk_with_the_lines_first(
    provider: str, sqlite_url: str, receiver: Receiver
) -> None:
    async with provider_server(provider, sqlite_url, safety_webhook_url=receiver.url) as (
        live,
        fake,
    ):
        before = await flags(live, "/ws/session", "self_harm")
        text = await counsel(live, "counsel-risk", "손목을 그었어요")
        assert has_lines(text, REQUIRED_LINES["self_harm"]) and text.startswith("말씀해 주셔서")
        assert await flags(live, "/ws/session", "self_harm") == before + 1
        await until(lambda: receiver.alerts, what="the webhook alert")
        assert receiver.alerts[0]["protocol"] == "/ws/session"
        assert receiver.alerts[0]["sessionId"] == "counsel-risk"
        if fake is not None:
            assert any(CRISIS_MARK in p for p in model_prompts(fake))
        assert "109" not in await counsel(live, "counsel-risk", "힘들어 죽겠네요 요즘")


# --- calls: each utterance, and POST /api/v1/calls/conversation/process ------------------


async def place_call(live: LiveServer) -> dict[str, Any]:
    async with aiohttp.ClientSession(base_url=live.url) as http:
        async with http.post("/api/v1/calls", json={"callerNumber": "01012345678"}) as resp:
            assert resp.status == 201
            call: dict[str, Any] = (await resp.json())["data"]["call"]
            return call


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_call_utterance_at_risk_is_answered_with_spoken_lines_first(
    provider: str, sqlite_url: str
) -> None:
    async with provider_server(provider, sqlite_url) as (live, fake):
        call = await place_call(live)
        spoken: list[str] = []

        async def say(sentence: str) -> None:
            spoken.append(sentence)

        before = await flags(live, "/signaling")
        reply = await live.app[VOICE_CONVERSATION].respond(
            call["sessionId"], call["id"], "그냥 죽고 싶어요", say
        )
        assert has_lines(" ".join(spoken[:5])) and "".join(spoken).replace(
            " ", ""
        ) == reply.replace(" ", "").replace("\n", "")
        assert await flags(live, "/signaling") == before + 1
        rows = await ChatMessage.filter(session_id=call["sessionId"]).order_by("created_at")
        asked, answered = rows[-2], rows[-1]
        assert asked.metadata and asked.metadata["safety"]["category"] == "suicide"
        assert answered.metadata and answered.metadata["safety"]["category"] == "suicide"
        if fake is not None:
            assert any(CRISIS_MARK in p for p in model_prompts(fake))


async def test_process_answers_a_transcript_at_risk_with_the_lines(sqlite_url: str) -> None:
    async with running_fake_openai() as fake:
        fake.transcript = "수면제를 모아 뒀어요"
        async with serve(fake_openai_settings(sqlite_url, fake)) as live:
            call = await place_call(live)
            before = await flags(live, "/api/v1/calls/conversation/process")
            form = aiohttp.FormData()
            # a real (silent) WAV: an upload that is not audio at all is refused with 400
            silence = wav_bytes(b"\0\0" * 1600, 16_000)
            form.add_field("audio", silence, filename="turn.wav", content_type="audio/wav")
            form.add_field("callId", call["id"])
            async with aiohttp.ClientSession(base_url=live.url) as http:
                async with http.post("/api/v1/calls/conversation/process", data=form) as resp:
                    assert resp.status == 200, await resp.text()
                    turn = (await resp.json())["data"]["conversation"]
            assert has_lines(turn["aiResponse"]) and turn["aiResponse"].startswith("말씀해")
            assert await flags(live, "/api/v1/calls/conversation/process") == before + 1


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        "😀😀😀",
        "ㅈㄱㅅㅇ",
        "노인 job 구하고 싶어요 please",
        "      노      인      ",
        "가" * 2000,
        "?",
    ],
)
async def test_chat_bad_input_gets_an_answer_or_the_contracts_error(
    server: LiveServer, message: str
) -> None:
    client, session_id = await joined_chat_client(server.url)
    try:
        await client.call("send-message", {"sessionId": session_id, "message": message})
        reply = await client.next("ai-message", timeout=15)
    finally:
        await client.close()
    assert reply["content"].strip()
    if message == "ㅈㄱㅅㅇ":  # 죽고 싶어, as chat abbreviates it
        assert has_lines(reply["content"])
