"""Speech providers: offline pocketsphinx and espeak-ng, and OpenAI's against the fake."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import sys
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from server.ai.audio import decode_to_pcm, wav_bytes
from server.ai.factory import create_speech
from server.ai.local.stt import PocketsphinxSTT
from server.ai.local.tts import EspeakTTS
from server.ai.speech import SpeechError
from tests.conftest import fake_openai_settings, make_settings, require
from tests.support.fakes.openai_server import running_fake_openai, tone_mp3
from tests.support.fakes.spoken import (
    WELFARE_KEYWORDS,
    espeak_available,
    silence_wav,
    spoken_wav,
    tone_wav,
)


def heard_keyword(transcript: str) -> bool:
    return any(word in transcript.lower().split() for word in WELFARE_KEYWORDS)


def reencode(wav: bytes, container: str, codec: str, rate: int) -> bytes:
    """The WAV as a browser or phone would upload it (webm/opus, ogg, mp3)."""
    out = io.BytesIO()
    with av.open(io.BytesIO(wav), "r") as src, av.open(out, "w", format=container) as dst:
        stream = dst.add_stream(codec, rate=rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        for frame in src.decode(audio=0):
            frame.pts = None
            for packet in stream.encode(frame):
                dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)
    return out.getvalue()


async def test_local_tts_speaks_korean_as_a_valid_wav() -> None:
    require(espeak_available(), "espeak-ng is not installed")
    tts = EspeakTTS()
    assert (tts.name, tts.format) == ("local", "wav")
    audio = await tts.synthesize("안녕하세요! AI 상담원입니다. 무엇을 도와드릴까요?")
    with wave.open(io.BytesIO(audio)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        seconds = wav.getnframes() / wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    assert 1.0 < seconds < 10.0
    assert len(audio) == 44 + len(samples) * 2  # the header's sizes are the real ones
    assert int.from_bytes(audio[4:8], "little") == len(audio) - 8
    assert np.abs(samples).max() > 1000  # speech, not silence
    # a reply that starts with '-' is text, not an option of the program
    assert len(await tts.synthesize("- 담당: 보건복지상담센터")) > 44


def espeak_children() -> list[int]:
    """Our espeak-ng child processes, alive or not yet reaped (Linux /proc)."""
    pids = []
    for children in Path("/proc/self/task").glob("*/children"):
        pids += [int(p) for p in children.read_text().split()]
    return [p for p in pids if _comm(p) == "espeak-ng"]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@pytest.mark.slow
async def test_a_cancelled_local_tts_leaves_no_process_or_pipe_behind() -> None:
    require(espeak_available(), "espeak-ng is not installed")
    require(sys.platform == "linux", "needs Linux /proc")
    long_reply = "복지 서비스를 안내해 드리겠습니다. " * 20  # more audio than a pipe buffer holds
    for steps in range(1, 6):  # cancelled at different points of the synthesis
        task = asyncio.create_task(EspeakTTS().synthesize(long_reply))
        await asyncio.sleep(0.01 * steps)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        gc.collect()  # an unclosed pipe would warn here (warnings are errors)
    assert espeak_children() == []  # none left blocked on a full pipe


async def test_local_tts_errors_are_clear(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(SpeechError):
        await EspeakTTS().synthesize("   ")
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng anywhere
    with pytest.raises(SpeechError, match="espeak-ng is not installed"):
        await EspeakTTS().synthesize("안녕하세요")


@pytest.mark.slow
async def test_local_stt_hears_english_in_any_container() -> None:
    require(espeak_available(), "espeak-ng is not installed")
    stt = PocketsphinxSTT()
    try:
        wav = await spoken_wav()
        transcript = await stt.transcribe(wav)
        assert heard_keyword(transcript), transcript
        for container, codec, rate in [("webm", "libopus", 48000), ("mp3", "libmp3lame", 22050)]:
            upload = reencode(wav, container, codec, rate)
            transcript = await stt.transcribe(upload, filename=f"audio.{container}")
            assert heard_keyword(transcript), (container, transcript)
    finally:
        await stt.aclose()


@pytest.mark.slow
async def test_local_stt_on_silence_garbage_and_a_dead_worker() -> None:
    stt = PocketsphinxSTT()
    try:
        await stt.warm_up()
        assert await stt.transcribe(silence_wav()) == ""
        assert await stt.transcribe(wav_bytes(b"")) == ""
        for garbage in (b"", b"not audio at all" * 100, tone_wav()[:30]):
            with pytest.raises(SpeechError):
                await stt.transcribe(garbage)
        # the worker process dies between utterances: the next one gets a new worker
        worker = stt._process
        assert worker is not None
        worker.kill()
        await worker.wait()
        assert await stt.transcribe(silence_wav()) == ""
        assert stt._process is not None and stt._process is not worker
    finally:
        await stt.aclose()


def test_decode_to_pcm_resamples_to_16k_mono() -> None:
    pcm = decode_to_pcm(tone_wav(seconds=1.0, rate=44100))
    assert abs(len(pcm) // 2 - 16000) < 200
    assert decode_to_pcm(wav_bytes(pcm)) == pcm


async def test_speech_is_offline_without_an_openai_key(sqlite_url: str) -> None:
    for provider in ("local", "gemini", "openai"):
        speech = create_speech(make_settings(sqlite_url, ai_provider=provider))
        assert (speech.stt.name, speech.tts.name, speech.tts.format) == ("local", "local", "wav")
        await speech.aclose()


async def test_openai_stt_and_tts_against_the_fake(sqlite_url: str) -> None:
    async with running_fake_openai() as fake:
        fake.transcript = "노인 일자리 알려주세요"
        settings = fake_openai_settings(sqlite_url, fake, tts_voice="nova")
        speech = create_speech(settings)
        try:
            assert (speech.stt.name, speech.tts.name, speech.tts.format) == (
                "openai",
                "openai",
                "mp3",
            )
            audio = tone_wav()
            assert await speech.stt.transcribe(audio, filename="turn.wav") == fake.transcript
            assert len(fake.transcriptions) == 1
            sent = fake.transcriptions[0]
            assert sent["model"] == "whisper-1"
            assert sent["file"] == audio and sent["filename"] == "turn.wav"

            assert await speech.tts.synthesize("안녕하세요") == tone_mp3()
            assert fake.speeches == [
                {"model": "tts-1", "voice": "nova", "input": "안녕하세요", "response_format": "mp3"}
            ]

            fake.fail_transcription = 500
            with pytest.raises(SpeechError):
                await speech.stt.transcribe(audio)
            fake.fail_speech = 503
            with pytest.raises(SpeechError):
                await speech.tts.synthesize("안녕하세요")
        finally:
            await speech.aclose()
