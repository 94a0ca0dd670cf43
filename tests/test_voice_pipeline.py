"""The voice pipeline (CONTRACT §2): a Python WebRTC caller talks to the AI over loopback.

Media never leaves 127.0.0.1: the AI peer runs with RTC_ICE_LOOPBACK=1, the caller gathers
on 127.0.0.1 only, and neither side has a STUN server.
"""

from __future__ import annotations

import asyncio
import base64
import io
import wave
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from models import ChatMessage
from models.calls import Call
from server.calls.prompts import CALL_GREETING
from server.keys import CALLS, VOICE_CALLS
from server.voice.outbound import SAMPLE_RATE, SpeakerTrack
from server.voice.peer import LOOPBACK, AIPeer, host_addresses
from server.voice.turns import Pause, TurnDetector, Utterance
from tests.conftest import LiveServer, fake_openai_settings, make_settings, require, serve
from tests.support.fakes.openai_server import FakeOpenAI, tone_mp3
from tests.support.sio import RecordingClient
from tests.support.voice_client import KEYWORDS, Caller, espeak_available, spoken_wav
from tests.support.waiting import until

SPEECH_FRAME = b"\x01\x00" * 512  # 32 ms at 16 kHz (the detector only sees the VAD flag)


def test_turn_ends_after_the_longest_silence_without_a_model() -> None:
    turns = TurnDetector(pause_ms=512, max_silence_ms=512, min_speech_ms=200)
    now = 0.0
    assert turns.feed(SPEECH_FRAME, False, now) is None  # pre-roll
    for _ in range(20):  # 640 ms of speech
        now += 0.032
        assert not isinstance(turns.feed(SPEECH_FRAME, True, now), Utterance)
    last_speech = now
    silence = [turns.feed(SPEECH_FRAME, False, now := now + 0.032) for _ in range(16)]
    assert silence[:15] == [None] * 15  # 16 x 32 ms = 512 ms
    ended = silence[15]
    assert isinstance(ended, Utterance) and ended.ended_by == "silence"
    assert ended.speech_ended_at == last_speech and ended.detected_at == now
    assert len(ended.pcm) == (1 + 20 + 16) * len(SPEECH_FRAME)  # pre-roll kept


def test_a_pause_asks_the_model_and_speech_resumed_cancels_its_verdict() -> None:
    turns = TurnDetector(pause_ms=192, max_silence_ms=1504, min_speech_ms=200, confirm_ms=256)
    events = [turns.feed(SPEECH_FRAME, True, i * 0.032) for i in range(10)]
    # the first speech frame, then 8 of them (256 ms): the caller is really talking
    assert [type(e).__name__ for e in events if e] == ["SpeechOnset", "SpeechStarted"]
    events = [turns.feed(SPEECH_FRAME, False, 1 + i * 0.032) for i in range(6)]
    pause = events[5]
    assert isinstance(pause, Pause) and events[:5] == [None] * 5
    turns.feed(SPEECH_FRAME, True, 2.0)  # the caller goes on before the verdict
    assert turns.end(pause, 2.1, 0.1) is None and turns.in_speech
    events = [turns.feed(SPEECH_FRAME, False, 3 + i * 0.032) for i in range(6)]
    second = events[5]
    assert isinstance(second, Pause)
    ended = turns.end(second, 3.3, 0.1)
    assert isinstance(ended, Utterance) and ended.ended_by == "model"
    assert ended.decision_seconds == 0.1 and not turns.in_speech


def test_short_bursts_are_not_utterances() -> None:
    turns = TurnDetector(pause_ms=100, max_silence_ms=100, min_speech_ms=200)
    results = [turns.feed(SPEECH_FRAME, True, 0.0) for _ in range(3)]  # 96 ms: a click
    results += [turns.feed(SPEECH_FRAME, False, 0.0) for _ in range(10)]
    assert [type(r).__name__ for r in results if r] == ["SpeechOnset"]  # no utterance
    assert not turns.in_speech


def test_an_endless_utterance_is_cut_at_the_cap() -> None:
    turns = TurnDetector(max_utterance_ms=3200)
    events = [turns.feed(SPEECH_FRAME, True, i * 0.032) for i in range(250)]
    cut = [e for e in events if isinstance(e, Utterance)]
    assert len(cut) == 2 and all(u.ended_by == "cap" for u in cut)
    assert all(len(u.pcm) == 100 * len(SPEECH_FRAME) for u in cut)


async def test_ai_peer_plays_paced_audio_to_a_loopback_caller() -> None:
    speaker = SpeakerTrack()
    ai = AIPeer(speaker, loopback=True)
    caller = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    caller.addTrack(SpeakerTrack())
    heard: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    @caller.on("track")
    def on_track(track: Any) -> None:
        if not heard.done():
            heard.set_result(track)

    try:
        with host_addresses([LOOPBACK]):
            await caller.setLocalDescription(await caller.createOffer())
        answer = await ai.answer(caller.localDescription.sdp)
        candidates = [line for line in answer.splitlines() if line.startswith("a=candidate:")]
        assert candidates and all(f" {LOOPBACK} " in line for line in candidates)
        await caller.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        track = await asyncio.wait_for(heard, 5)
        assert (await asyncio.wait_for(ai.incoming, 5)).kind == "audio"
        seconds = np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
        tone = (np.sin(2 * np.pi * 440 * seconds) * 8000).astype(np.int16).tobytes()
        played = speaker.play(tone)
        loud = 0
        for _ in range(200):
            frame = await asyncio.wait_for(track.recv(), 5)
            if np.abs(frame.to_ndarray()).max() > 1000:
                loud += 1
            if loud >= 10:
                break
        assert loud >= 10
        await asyncio.wait_for(played.finished, 5)
    finally:
        await ai.close()
        await caller.close()
        speaker.stop()


@pytest.fixture
async def voice_server(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LiveServer]:
    require(espeak_available(), "espeak-ng is not installed")
    monkeypatch.setenv("RTC_ICE_LOOPBACK", "1")
    monkeypatch.setenv("VOICE_GREETING_DELAY_MS", "200")
    monkeypatch.setenv("STT_LANGUAGE", "en")  # the test caller speaks English
    async with serve(make_settings(sqlite_url)) as live:
        yield live


async def place_call(live: LiveServer) -> Call:
    return await live.app[CALLS].create("010-1234-5678")


async def connect_caller(
    live: LiveServer, call: Call, caller: Caller | None = None
) -> tuple[RecordingClient, Caller]:
    signaling = RecordingClient("/signaling")
    await signaling.connect(live.url)
    await signaling.call(
        "join-session", {"sessionId": call.session_id, "peerId": "caller", "callId": call.id}
    )
    caller = caller or Caller()
    await signaling.emit(
        "offer", {"sessionId": call.session_id, "peerId": "caller", "offer": await caller.offer()}
    )
    answered = await signaling.next("answer", timeout=10)
    assert answered["peerId"] == "ai-server"
    assert set(answered["answer"]) == {"type", "sdp"} and answered["answer"]["type"] == "answer"
    await caller.accept(answered["answer"])
    return signaling, caller


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as wav:
        return wav.getnframes() / wav.getframerate()


@pytest.mark.slow
async def test_offline_call_greets_hears_and_answers_by_voice(voice_server: LiveServer) -> None:
    call = await place_call(voice_server)
    signaling, caller = await connect_caller(voice_server, call)
    try:
        greeting = await signaling.next("ai-audio-response", timeout=20)
        assert greeting["text"] == CALL_GREETING and greeting["format"] == "wav"
        assert isinstance(greeting["timestamp"], int)
        assert wav_seconds(base64.b64decode(greeting["audioData"])) > 1
        await caller.sound()
        assert (await Call.get(id=call.id)).status == "IN_PROGRESS"

        await caller.say(spoken_wav())
        reply = await signaling.next("ai-audio-response", timeout=60)
        transcript = reply["transcript"].lower()
        assert any(word in transcript for word in KEYWORDS), transcript
        assert reply["text"] and base64.b64decode(reply["audioData"])[:4] == b"RIFF"
        caller.quiet()
        await caller.sound()

        rows = await ChatMessage.filter(session_id=call.session_id).order_by("created_at")
        assert [(r.sender, r.message_type) for r in rows[:3]] == [
            ("assistant", "AUDIO"),
            ("user", "AUDIO"),
            ("assistant", "AUDIO"),
        ]
        assert rows[0].content == CALL_GREETING and rows[1].content == reply["transcript"]
        assert all(r.metadata and r.metadata["callId"] == call.id for r in rows)
        turns = voice_server.app[VOICE_CALLS].of_call(call.id)[0].pipeline.turns
        await until(lambda: bool(turns) and turns[0].total is not None, timeout=20)
        assert turns[0].total is not None and turns[0].total > 0

        await signaling.call("leave-session", {"sessionId": call.session_id, "peerId": "caller"})
        ended = await Call.get(id=call.id)
        assert ended.status == "ENDED" and ended.duration is not None
        assert len(voice_server.app[VOICE_CALLS]) == 0
    finally:
        await caller.close()
        await signaling.close()


@pytest.fixture
async def openai_voice_server(
    sqlite_url: str, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LiveServer]:
    require(espeak_available(), "espeak-ng is not installed")
    monkeypatch.setenv("RTC_ICE_LOOPBACK", "1")
    monkeypatch.setenv("VOICE_GREETING_DELAY_MS", "200")
    monkeypatch.setenv("TTS_VOICE", "nova")
    settings = fake_openai_settings(sqlite_url, fake_openai)
    async with serve(settings) as live:
        yield live


@pytest.mark.slow  # seconds of its own (a real call, a timeout, a retry schedule)
async def test_openai_call_uses_whisper_the_welfare_tool_and_tts(
    openai_voice_server: LiveServer, fake_openai: FakeOpenAI
) -> None:
    call = await place_call(openai_voice_server)
    signaling, caller = await connect_caller(openai_voice_server, call)
    try:
        greeting = await signaling.next("ai-audio-response", timeout=20)
        assert greeting["text"] == CALL_GREETING and greeting["format"] == "mp3"
        assert base64.b64decode(greeting["audioData"]) == tone_mp3()
        await caller.sound()

        await caller.say(spoken_wav())
        reply = await signaling.next("ai-audio-response", timeout=60)
        assert reply["transcript"] == fake_openai.transcript and reply["format"] == "mp3"
        assert fake_openai.transcriptions[0]["model"] == "gpt-4o-mini-transcribe"
        assert fake_openai.transcriptions[0]["file"][:4] == b"RIFF"  # the utterance as WAV
        # the model's turns (the sentiment of the utterance is judged beside them)
        chats = [r for r in fake_openai.requests if "sentiment classifier" not in str(r)]
        chat = chats[0]
        assert [t["function"]["name"] for t in chat["tools"]] == ["search_welfare_services"]
        assert chat["messages"][-1] == {"role": "user", "content": fake_openai.transcript}
        assert any(m["role"] == "tool" for m in chats[1]["messages"])
        spoken = [(s["model"], s["voice"], s["input"]) for s in fake_openai.speeches]
        assert spoken[0] == ("gpt-4o-mini-tts", "nova", CALL_GREETING)
        assert spoken[1][2] == reply["text"]
        caller.quiet()
        await caller.sound()
    finally:
        await caller.close()
        await signaling.close()
