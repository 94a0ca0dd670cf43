"""The voice figures at `/metrics` (issue #6): active calls, each turn's stages, provider
time; and the voice bench's smoke run.

The metrics are process-wide, so each test compares before and after its own call.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bench.voice_report import parse_metrics
from server.keys import CALLS, VOICE_CALLS
from tests.conftest import LiveServer, fake_openai_settings, require, serve
from tests.support.fakes.openai_server import FakeOpenAI
from tests.support.sio import RecordingClient
from tests.support.voice_client import Caller, espeak_available, spoken_wav
from tests.support.waiting import until

STAGES = ("end_of_utterance", "first_audio", "overhead")


@pytest.fixture
async def voice_server(
    sqlite_url: str, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LiveServer]:
    require(espeak_available(), "espeak-ng is not installed")
    monkeypatch.setenv("RTC_ICE_LOOPBACK", "1")
    monkeypatch.setenv("VOICE_GREETING_DELAY_MS", "100")
    settings = fake_openai_settings(sqlite_url, fake_openai)
    async with serve(settings) as live:
        yield live


async def metrics(live: LiveServer) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(live.url + "/metrics") as response:
        assert response.status == 200
        return parse_metrics(await response.text())


def stage_count(values: dict[str, float], stage: str) -> float:
    return values.get(f'mobok_voice_stage_seconds_count{{stage="{stage}"}}', 0.0)


def event_count(values: dict[str, float], event: str) -> float:
    return values.get(f'mobok_voice_turn_events_total{{event="{event}"}}', 0.0)


def provider_count(values: dict[str, float], stage: str) -> float:
    return values.get(f'mobok_provider_seconds_count{{provider="openai",stage="{stage}"}}', 0.0)


@pytest.mark.slow  # seconds of its own (a real call, a timeout, a retry schedule)
async def test_one_turn_shows_active_calls_and_voice_stages(
    voice_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.voice.latency")
    before = await metrics(voice_server)
    call = await voice_server.app[CALLS].create("010-1234-5678")
    signaling = RecordingClient("/signaling")
    caller = Caller()
    peer = {"sessionId": call.session_id, "peerId": "caller"}
    try:
        await signaling.connect(voice_server.url)
        await signaling.call("join-session", {**peer, "callId": call.id})
        await signaling.emit("offer", {**peer, "offer": await caller.offer()})
        await caller.accept((await signaling.next("answer", timeout=10))["answer"])
        await signaling.next("ai-audio-response", timeout=20)  # the greeting
        during = await metrics(voice_server)
        assert during["mobok_active_calls"] == before.get("mobok_active_calls", 0) + 1

        await caller.say(spoken_wav())
        reply = await signaling.next("ai-audio-response", timeout=60)
        assert reply["transcript"]
        ai_call = voice_server.app[VOICE_CALLS].get(call.session_id, "caller")
        assert ai_call is not None
        # the cheap paths (server.voice.receive, .opus): caught here if aiortc moves on
        assert ai_call.peer.receiving_tuned and ai_call.track.send_opus
        turns = ai_call.pipeline.turns
        await until(lambda: bool(turns) and turns[0].reported, timeout=20)

        after = await metrics(voice_server)
        for stage in STAGES:
            assert stage_count(after, stage) == stage_count(before, stage) + 1, stage
        assert provider_count(after, "stt") == provider_count(before, "stt") + 1
        ends = (
            "end_of_turn_model",
            "end_of_turn_transcript",
            "end_of_turn_deadline",
            "end_of_turn_silence",
        )
        assert sum(event_count(after, e) - event_count(before, e) for e in ends) == 1
        # the greeting and at least one sentence of the reply
        assert (
            provider_count(after, "tts_first_byte") >= provider_count(before, "tts_first_byte") + 2
        )
        breakdown = turns[0].breakdown_ms()
        assert all(breakdown[k] is not None for k in ("stt", "llm_wait", "tts", "overhead"))
        logged = [r for r in caplog.records if r.getMessage() == "voice turn latency"]
        assert [getattr(r, "callId", None) for r in logged] == [call.id]

        await signaling.call("leave-session", peer)
        await until(lambda: len(voice_server.app[VOICE_CALLS]) == 0, timeout=20)
        ended = await metrics(voice_server)
        assert ended["mobok_active_calls"] == before.get("mobok_active_calls", 0)
    finally:
        await caller.close()
        await signaling.close()


@pytest.mark.bench
async def test_bench_smoke_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`make bench-voice` at N=1, one turn, fake providers: every figure is there."""
    require(espeak_available(), "espeak-ng is not installed")
    from bench.voice import main

    detail = tmp_path / "turns.jsonl"
    log = tmp_path / "server.log"
    args = ["--calls", "1", "--turns", "1", "--no-warm-up", "--detail", str(detail)]
    status = await main([*args, "--log", str(log)])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    scenario, capacity = lines
    # figures only: whether they meet a target is the bench's business, not a test's
    assert status == 0 and scenario["errors"] == 0
    assert scenario["turns"] == 1 and scenario["peak_active_calls"] == 1
    for stage in ("end_of_utterance", "stt", "llm_wait", "tts", "first_audio", "overhead"):
        assert scenario[f"{stage}_ms"]["p50"] is not None, stage
    assert scenario["client_first_audio_ms"]["p50"] is not None
    events = scenario["turn_events"]
    ends = (
        "end_of_turn_model",
        "end_of_turn_transcript",
        "end_of_turn_deadline",
        "end_of_turn_silence",
    )
    assert sum(events[e] for e in ends) == 1
    assert isinstance(scenario["underruns"], int) and scenario["server_frames"] > 0
    assert capacity["tested"] == [{"calls": 1, "ok": scenario["ok"]}]
    (turn,) = [json.loads(line) for line in detail.read_text().splitlines()]
    assert isinstance(turn["first_audio_before_reply_done"], bool)
    assert "voice turn latency" in log.read_text()
