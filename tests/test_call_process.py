"""`POST /api/v1/calls/conversation/process` (§2.1) offline and against the fake OpenAI,
and the spoken conversation underneath it (stored AUDIO turns, sentence by sentence)."""

from __future__ import annotations

import base64
import io
import re
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from models import ChatMessage
from server.calls.prompts import CALL_GREETING, PHONE_COUNSELOR_SYSTEM_PROMPT
from server.calls.sentences import speakable
from server.calls.sentiment import SentimentAnalyzer
from server.keys import CALLS, SENTIMENT, VOICE_CONVERSATION
from server.safety.prompts import with_risk_guidance
from tests.conftest import LiveServer, fake_openai_settings, require, serve
from tests.support.fakes.openai_server import FakeOpenAI, running_fake_openai, tone_mp3
from tests.support.fakes.spoken import (
    WELFARE_KEYWORDS,
    espeak_available,
    silence_wav,
    spoken_wav,
    tone_wav,
)

pytestmark = pytest.mark.slow  # server processes and outages: seconds each

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
PROCESS = "/api/v1/calls/conversation/process"


def error(message: str) -> dict[str, Any]:
    return {"success": False, "error": {"message": message}}


async def place_call(http: aiohttp.ClientSession) -> dict[str, Any]:
    async with http.post("/api/v1/calls", json={"callerNumber": "01012345678"}) as resp:
        assert resp.status == 201
        return (await resp.json())["data"]["call"]


async def process(
    http: aiohttp.ClientSession,
    audio: bytes | None,
    call_id: str | None,
    system_prompt: str | None = None,
    filename: str = "turn.wav",
) -> tuple[int, Any]:
    form = aiohttp.FormData()
    if audio is not None:
        form.add_field("audio", audio, filename=filename, content_type="audio/wav")
    if call_id is not None:
        form.add_field("callId", call_id)
    if system_prompt is not None:
        form.add_field("systemPrompt", system_prompt)
    async with http.post(PROCESS, data=form) as resp:
        return resp.status, await resp.json()


async def stored_turns(session_id: str) -> list[ChatMessage]:
    return await ChatMessage.filter(session_id=session_id).order_by("created_at")


@asynccontextmanager
async def fake_openai_server(sqlite_url: str) -> AsyncIterator[tuple[LiveServer, FakeOpenAI]]:
    async with running_fake_openai() as fake:
        settings = fake_openai_settings(sqlite_url, fake, tts_voice="shimmer")
        async with serve(settings) as live:
            yield live, fake


async def test_process_offline_hears_answers_and_speaks(server: LiveServer) -> None:
    require(espeak_available(), "espeak-ng is not installed")
    async with aiohttp.ClientSession(base_url=server.url) as http:
        call = await place_call(http)
        status, answer = await process(http, await spoken_wav(), call["id"])
    assert status == 200, answer
    assert answer["success"] is True
    data = answer["data"]
    turn = data["conversation"]
    assert set(turn) == {"userMessage", "aiResponse", "sentiment", "timestamp"}
    assert any(word in turn["userMessage"].split() for word in WELFARE_KEYWORDS), turn
    assert turn["aiResponse"].strip()
    assert turn["sentiment"]["sentiment"] in ("positive", "neutral", "negative")
    assert 0 <= turn["sentiment"]["score"] <= 1
    assert ISO_MS.match(turn["timestamp"])
    prefix = "data:audio/wav;base64,"  # offline speech is WAV
    assert data["audioUrl"].startswith(prefix)
    with wave.open(io.BytesIO(base64.b64decode(data["audioUrl"][len(prefix) :]))) as spoken:
        assert spoken.getnframes() > spoken.getframerate() // 2

    rows = await stored_turns(call["sessionId"])
    assert [(r.sender, r.message_type, r.content) for r in rows] == [
        ("user", "AUDIO", turn["userMessage"]),
        ("assistant", "AUDIO", turn["aiResponse"]),
    ]
    assert all(r.metadata and r.metadata["callId"] == call["id"] for r in rows)


async def test_process_with_openai_speech_and_the_welfare_tool(sqlite_url: str) -> None:
    async with fake_openai_server(sqlite_url) as (live, fake):
        async with aiohttp.ClientSession(base_url=live.url) as http:
            call = await place_call(http)
            upload = tone_wav()
            status, answer = await process(http, upload, call["id"], filename="turn.webm")
            assert status == 200, answer
            turn = answer["data"]["conversation"]
            assert turn["userMessage"] == fake.transcript
            assert "검색 결과입니다" in turn["aiResponse"]  # the fake's answer from the tool
            assert turn["sentiment"] == {"sentiment": "positive", "score": 0.9}  # the model's
            assert answer["data"]["audioUrl"] == (
                "data:audio/mp3;base64," + base64.b64encode(tone_mp3()).decode()
            )

            # whisper-1 got the upload as it was sent
            assert len(fake.transcriptions) == 1
            sent = fake.transcriptions[0]
            assert sent["model"] == "whisper-1"
            assert (sent["file"], sent["filename"]) == (upload, "turn.webm")
            # the model: the phone counselor prompt, the transcript, the welfare tool
            chats = [r for r in fake.requests if "sentiment classifier" not in str(r["messages"])]
            first = chats[0]
            assert first["messages"][0] == {
                "role": "system",
                "content": PHONE_COUNSELOR_SYSTEM_PROMPT,
            }
            assert first["messages"][-1] == {"role": "user", "content": fake.transcript}
            assert [t["function"]["name"] for t in first["tools"]] == ["search_welfare_services"]
            assert chats[1]["messages"][-1]["role"] == "tool"
            # tts-1 spoke the answer (without its list markup) in the configured voice
            assert fake.speeches == [
                {
                    "model": "tts-1",
                    "voice": "shimmer",
                    "input": speakable(turn["aiResponse"]),
                    "response_format": "mp3",
                }
            ]

            # a second turn with the caller's own system prompt sees the first turn
            fake.transcript = "고맙습니다"
            fake.requests.clear()
            prompt = "당신은 친절한 고객 서비스 담당자입니다."
            status, answer = await process(http, upload, call["id"], system_prompt=prompt)
            assert status == 200, answer
            chats = [r for r in fake.requests if "sentiment classifier" not in str(r["messages"])]
            messages = chats[0]["messages"]
            assert messages[0] == {"role": "system", "content": with_risk_guidance(prompt)}
            assert [m["role"] for m in messages[1:]] == ["user", "assistant", "user"]
            assert messages[1]["content"] == "노인 복지 서비스 알려줘"
            assert messages[-1]["content"] == "고맙습니다"

            # without a usable file name, the format is named from the audio's first bytes
            status, _ = await process(http, upload, call["id"], filename="blob")
            assert status == 200
            assert fake.transcriptions[-1]["filename"] == "audio.wav"

        rows = await stored_turns(call["sessionId"])
        assert [(r.sender, r.message_type) for r in rows] == [
            ("user", "AUDIO"),
            ("assistant", "AUDIO"),
        ] * 3
        assert rows[1].metadata is not None
        assert rows[1].metadata["callId"] == call["id"]
        assert rows[1].metadata["replyTo"] == rows[0].id
        assert rows[1].metadata["tools"][0]["name"] == "search_welfare_services"


async def test_process_refuses_bad_requests(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with aiohttp.ClientSession(base_url=server.url) as http:
        call = await place_call(http)
        wav = tone_wav()
        assert await process(http, None, call["id"]) == (400, error("잘못된 요청입니다: audio"))
        assert await process(http, b"", call["id"]) == (400, error("잘못된 요청입니다: audio"))
        assert await process(http, wav, None) == (400, error("잘못된 요청입니다: callId"))
        assert await process(http, wav, "  ") == (400, error("잘못된 요청입니다: callId"))
        assert await process(http, wav, "no-such-call") == (404, error("통화를 찾을 수 없습니다"))
        async with http.post(PROCESS, json={"callId": call["id"]}) as resp:
            assert (resp.status, await resp.json()) == (400, error("잘못된 요청입니다: audio"))
        broken = {"Content-Type": "multipart/form-data; boundary=x"}
        part = b'--x\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n\r\n'
        for body in (b"--x\r\nnonsense", b"garbage", part + b"RIFF", part + wav + b"\r\n--y"):
            async with http.post(PROCESS, data=body, headers=broken) as resp:
                assert resp.status == 400, body[:60]
                assert await resp.json() == error("잘못된 요청입니다: audio")
        monkeypatch.setattr("server.rest.calls.MAX_AUDIO_BYTES", 1000)
        assert await process(http, wav, call["id"]) == (400, error("잘못된 요청입니다: audio"))
        monkeypatch.undo()

        # not an audio file at all: the client's mistake, said before any speech work
        assert await process(http, b"not audio" * 50, call["id"]) == (
            400,
            error("잘못된 요청입니다: audio"),
        )
        assert await process(http, silence_wav(), call["id"]) == (
            422,
            error("음성에서 말을 인식하지 못했습니다"),
        )
        assert await stored_turns(call["sessionId"]) == []  # nothing was heard, nothing stored

        await server.app[CALLS].fail(call["id"])
        assert await process(http, wav, call["id"]) == (409, error("이미 종료된 통화입니다"))


async def test_process_reports_provider_failures(sqlite_url: str) -> None:
    async with fake_openai_server(sqlite_url) as (live, fake):
        async with aiohttp.ClientSession(base_url=live.url) as http:
            call = await place_call(http)
            wav = tone_wav()
            fake.fail_transcription = 500
            assert await process(http, wav, call["id"]) == (502, error("음성 처리에 실패했습니다"))
            fake.fail_transcription = None

            fake.fail_status = 500  # the chat model
            assert await process(http, wav, call["id"]) == (
                502,
                error("AI 응답 생성에 실패했습니다"),
            )
            rows = await stored_turns(call["sessionId"])
            assert [r.sender for r in rows] == ["user"]  # the caller's words stay stored
            fake.fail_status = None

            fake.fail_speech = 500
            assert await process(http, wav, call["id"]) == (502, error("음성 처리에 실패했습니다"))
            fake.fail_speech = None
            status, _ = await process(http, wav, call["id"])
            assert status == 200  # and it keeps serving


async def test_respond_speaks_sentence_by_sentence(server: LiveServer) -> None:
    calls, conversation = server.app[CALLS], server.app[VOICE_CONVERSATION]
    call = await calls.create("01012345678")
    assert await conversation.greet(call.session_id, call.id) == CALL_GREETING
    sentences: list[str] = []

    async def on_sentence(sentence: str) -> None:
        sentences.append(sentence)

    reply = await conversation.respond(
        call.session_id, call.id, "노인 일자리 알려줘", on_sentence=on_sentence
    )
    assert len(sentences) > 2  # the offline model lists services: many sentences
    assert " ".join(sentences) == speakable(reply)
    assert all(s == speakable(s) and not s.startswith("-") for s in sentences)

    rows = await stored_turns(call.session_id)
    assert [(r.sender, r.content) for r in rows] == [
        ("assistant", CALL_GREETING),
        ("user", "노인 일자리 알려줘"),
        ("assistant", reply),
    ]
    assert {r.message_type for r in rows} == {"AUDIO"}
    assert all(r.metadata and r.metadata["callId"] == call.id for r in rows)

    # a failing sentence sink does not lose the reply
    async def broken(sentence: str) -> None:
        raise RuntimeError("speaker gone")

    assert await conversation.respond(call.session_id, call.id, "안녕", on_sentence=broken)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("정말 감사합니다. 큰 도움이 됐어요", "positive"),
        ("요즘 너무 힘들고 우울해요", "negative"),
        ("노인 복지 서비스 알려줘", "neutral"),
        ("좋지 않아요", "negative"),
        ("thank you, that is great", "positive"),
        ("I am not happy", "negative"),
    ],
)
async def test_offline_sentiment(server: LiveServer, text: str, label: str) -> None:
    judged = await server.app[SENTIMENT].analyze(text)
    assert judged.sentiment == label
    assert 0 <= judged.score <= 1
    assert (judged.score > 0.5) == (label == "positive")


async def test_sentiment_falls_back_to_the_lexicon_when_the_model_rambles(
    sqlite_url: str,
) -> None:
    async with fake_openai_server(sqlite_url) as (live, fake):
        analyzer = live.app[SENTIMENT]
        assert isinstance(analyzer, SentimentAnalyzer) and analyzer.llm is not None
        fake.sentiment_reply = '{"sentiment": "negative", "score": 0.1}'
        assert (await analyzer.analyze("고마워요")).sentiment == "negative"  # the model's word
        for unusable in ("I think it is positive", '{"sentiment": "great", "score": 2}'):
            fake.sentiment_reply = unusable
            judged = await analyzer.analyze("고마워요")
            assert (judged.sentiment, judged.score) == ("positive", 0.75)
