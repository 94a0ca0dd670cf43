"""Spend limits: calls placed per user (or address) per hour, `conversation/process` per user
per minute, voice turns per call per minute; counted in Redis with REDIS_URL."""

from __future__ import annotations

import os
from typing import Any

import aiohttp
import jwt
from redis.asyncio import Redis

from server.voice.outbound import SpeakerTrack
from server.voice.pipeline import CallPipeline
from server.voice.settings import VoiceSettings
from server.voice.turns import Utterance
from tests.conftest import make_settings, require, serve

LIMITED = {
    "success": False,
    "error": {"message": "요청이 너무 많습니다. 잠시 후 다시 시도해 주세요"},
}
SECRET = "a-limits-test-secret-long-enough-for-hs256-32"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def place(http: aiohttp.ClientSession, url: str, **headers: str) -> tuple[int, Any]:
    async with http.post(
        url + "/api/v1/calls", json={"callerNumber": "010-1234-5678"}, headers=headers
    ) as resp:
        return resp.status, await resp.json()


async def test_calls_per_hour_are_counted_per_user(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, max_calls_per_hour=2, auth_secret=SECRET)
    alice = {"Authorization": "Bearer " + jwt.encode({"sub": "alice"}, SECRET)}
    bob = {"Authorization": "Bearer " + jwt.encode({"sub": "bob"}, SECRET)}
    async with serve(settings) as live, aiohttp.ClientSession() as http:
        assert (await place(http, live.url, **alice))[0] == 201
        assert (await place(http, live.url, **alice))[0] == 201
        assert await place(http, live.url, **alice) == (429, LIMITED)
        assert (await place(http, live.url, **bob))[0] == 201  # another user's own budget


async def test_process_per_minute_without_auth_counts_the_address(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, max_process_per_minute=1)
    async with serve(settings) as live, aiohttp.ClientSession() as http:
        _, placed = await place(http, live.url)
        call_id = placed["data"]["call"]["id"]

        async def process() -> tuple[int, Any]:
            form = aiohttp.FormData()
            form.add_field("audio", b"not audio", filename="a.wav")
            form.add_field("callId", call_id)
            async with http.post(live.url + "/api/v1/calls/conversation/process", data=form) as r:
                return r.status, await r.json()

        assert (await process())[0] == 400  # counted: the request was the client's to make
        assert await process() == (429, LIMITED)


async def test_the_limits_are_shared_through_redis(sqlite_url: str) -> None:
    redis = Redis.from_url(REDIS_URL)
    try:
        try:
            await redis.ping()
            reachable = True
        except OSError:
            reachable = False
        require(reachable, f"Redis not reachable at {REDIS_URL}")
        user = f"limits-{os.getpid()}-{id(redis)}"
        token = {"Authorization": "Bearer " + jwt.encode({"sub": user}, SECRET)}
        settings = make_settings(
            sqlite_url, max_calls_per_hour=1, auth_secret=SECRET, redis_url=REDIS_URL
        )
        async with serve(settings) as first, serve(settings) as second:
            async with aiohttp.ClientSession() as http:
                assert (await place(http, first.url, **token))[0] == 201
                assert await place(http, second.url, **token) == (429, LIMITED)
        assert await redis.exists(f"mobok:rate:calls:user:{user}") == 1
        await redis.delete(f"mobok:rate:calls:user:{user}")
    finally:
        await redis.aclose()


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.transcribed = 0

    async def emit(self, event: str, data: Any) -> None:
        self.events.append((event, data))

    async def transcribe(self, audio: bytes, *, filename: str = "a.wav", prompt: str = "") -> str:
        self.transcribed += 1
        return ""  # no words: nothing more to do


async def test_voice_turns_over_the_limit_are_refused_before_speech_work() -> None:
    recorder = Recorder()
    pipeline = CallPipeline(
        session_id="s",
        call_id="c",
        stt=recorder,  # type: ignore[arg-type]
        tts=None,  # type: ignore[arg-type]
        conversation=None,  # type: ignore[arg-type]
        track=SpeakerTrack(),
        emit=recorder.emit,
        settings=VoiceSettings(max_turns_per_minute=2),
    )
    utterance = Utterance(pcm=b"\0\0" * 1600, speech_ended_at=0.0, detected_at=0.0)
    for _ in range(3):
        await pipeline._answer(utterance)
    assert recorder.transcribed == 2
    assert recorder.events == [("error", {"message": LIMITED["error"]["message"]})]
    await pipeline.close()
