"""Sentiment on every utterance of a call: judged while the AI answers, stored in the
utterance's `metadata.sentiment`, sent on `ai-audio-response`, listed in the call's REST view."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from models import ChatMessage
from server.calls.sentiment import Sentiment
from server.keys import CALLS, VOICE_CONVERSATION
from tests.conftest import LiveServer, fake_openai_settings, require, serve
from tests.support.fakes.openai_server import FakeOpenAI
from tests.support.voice_client import espeak_available, spoken_wav
from tests.test_voice_pipeline import connect_caller

NEGATIVE = '{"sentiment": "negative", "score": 0.15}'


async def call_view(live: LiveServer, call_id: str) -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{live.url}/api/v1/calls/{call_id}") as response,
    ):
        assert response.status == 200
        return dict((await response.json())["data"])


async def test_each_utterance_gets_the_lexicons_sentiment_offline(any_server: LiveServer) -> None:
    calls, conversation = any_server.app[CALLS], any_server.app[VOICE_CONVERSATION]
    call = await calls.create("010-1234-5678")
    told: list[Sentiment] = []
    for said in ("너무 힘들고 외로워요", "정말 감사합니다 큰 도움이 됐어요"):
        await conversation.respond(call.session_id, call.id, said, on_sentiment=told.append)
    assert [s.sentiment for s in told] == ["negative", "positive"]
    rows = await ChatMessage.filter(session_id=call.session_id, sender="user").order_by(
        "created_at"
    )
    assert [r.metadata["sentiment"]["sentiment"] for r in rows if r.metadata] == [
        "negative",
        "positive",
    ]
    assert all(r.metadata and r.metadata["callId"] == call.id for r in rows)

    view = await call_view(any_server, call.id)
    transcript = view["transcript"]
    assert isinstance(transcript, list)
    assert [
        (line["sender"], line.get("sentiment", {}).get("sentiment")) for line in transcript
    ] == [
        ("user", "negative"),
        ("assistant", None),
        ("user", "positive"),
        ("assistant", None),
    ]
    assert transcript[0]["content"] == "너무 힘들고 외로워요"
    assert transcript[0]["sentiment"] == {"sentiment": "negative", "score": told[0].score}


@pytest.fixture
async def openai_call_server(
    sqlite_url: str, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LiveServer]:
    require(espeak_available(), "espeak-ng is not installed")
    monkeypatch.setenv("RTC_ICE_LOOPBACK", "1")
    monkeypatch.setenv("VOICE_GREETING_DELAY_MS", "100")
    fake_openai.transcript = "요즘 너무 힘들어요"
    fake_openai.sentiment_reply = NEGATIVE
    async with serve(fake_openai_settings(sqlite_url, fake_openai)) as live:
        yield live


@pytest.mark.slow  # a WebRTC call
async def test_a_live_call_sends_and_stores_the_models_sentiment(
    openai_call_server: LiveServer,
) -> None:
    """With a model, the model judges; the reply's `ai-audio-response` carries it."""
    call = await openai_call_server.app[CALLS].create("010-1234-5678")
    signaling, caller = await connect_caller(openai_call_server, call)
    try:
        greeting = await signaling.next("ai-audio-response", timeout=20)
        assert "sentiment" not in greeting  # nobody spoke yet
        await caller.sound()
        await caller.say(spoken_wav())
        reply = await signaling.next("ai-audio-response", timeout=60)
        assert reply["transcript"] == "요즘 너무 힘들어요"
        replies = [reply]
        while not any("sentiment" in r for r in replies):  # judged while the AI answers
            replies.append(await signaling.next("ai-audio-response", timeout=30))
        judged = next(r["sentiment"] for r in replies if "sentiment" in r)
        assert judged == {"sentiment": "negative", "score": 0.15}
        view = await call_view(openai_call_server, call.id)
        transcript = view["transcript"]
        assert isinstance(transcript, list)
        said = [line for line in transcript if line["sender"] == "user"]
        assert said and said[0]["sentiment"] == judged
    finally:
        await caller.close()
        await signaling.close()
