"""Turn taking on real calls (aiortc over loopback, the fake OpenAI): generated audio in
noise beds, pauses, speech over the AI and bad input. Each test asserts what the caller
would notice (how many answers, whether the AI stopped), never how fast."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest

from models import ChatMessage
from server.calls.sentences import SentenceSplitter
from server.keys import VOICE_CALLS
from server.voice import endpoint, models
from server.voice.outbound import SAMPLE_RATE
from server.voice.vad import SpeechDetector
from tests.conftest import LiveServer, fake_openai_settings, require, serve
from tests.support.fakes.openai_server import FakeOpenAI
from tests.support.fakes.spoken import pcm_wav
from tests.support.sio import RecordingClient
from tests.support.voice_client import (
    Caller,
    espeak_available,
    pcm16,
    pink_noise,
    rms,
    silence,
    spoken_pcm,
)
from tests.support.waiting import until
from tests.test_voice_pipeline import connect_caller, place_call

NOISE_UNDER_SPEECH_DB = 8


def noise_under(speech: np.ndarray, seconds: float, seed: int = 1) -> np.ndarray:
    return pink_noise(seconds, rms(speech) / 10 ** (NOISE_UNDER_SPEECH_DB / 20), seed)


def detector_verdicts(samples48: np.ndarray) -> list[bool]:
    """The VAD's verdict per 32 ms of 48 kHz samples (decimated to 16 kHz)."""
    detector = SpeechDetector(models.session(models.SILERO_VAD))
    return [speech for _, speech in detector(pcm16(samples48[::3]))]


def test_the_vad_ignores_steady_noise_and_hears_speech_inside_it() -> None:
    require(espeak_available(), "espeak-ng is not installed")
    speech = spoken_pcm()
    noise = noise_under(speech, 15)
    assert sum(detector_verdicts(noise)) == 0  # 15 s of pink noise 8 dB under the voice
    bed = noise[: speech.size] + speech
    heard = detector_verdicts(bed)
    assert sum(heard) > 0.6 * len(heard)
    dc = detector_verdicts(np.full(48_000, 8000.0))  # a DC offset alone is not sound
    assert sum(dc) == 0


def test_the_vad_learns_a_steady_noise_and_stops_asking_the_model_about_it() -> None:
    require(espeak_available(), "espeak-ng is not installed")
    detector = SpeechDetector(models.session(models.SILERO_VAD))
    chunks = detector(pcm16(noise_under(spoken_pcm(), 15)[::3]))
    # the floor rises to the noise in ~2.5 s; after that the model hears only its peaks
    assert not any(speech for _, speech in chunks)
    assert detector.model_runs < 0.25 * len(chunks)
    runs = detector.model_runs
    detector(pcm16(spoken_pcm()[::3]))  # a voice over it is heard again
    assert detector.model_runs > runs


def test_the_end_of_turn_model_hears_a_trailing_phrase() -> None:
    require(espeak_available(), "espeak-ng is not installed")
    model = models.session(models.SMART_TURN)

    def completion(text: str) -> float:
        pcm = pcm16(np.concatenate([spoken_pcm(text), silence(0.2)])[::3])
        return endpoint.completion(model, pcm)

    assert completion("I want to know about services for senior citizens.") > endpoint.COMPLETE
    assert completion("I want to know about,") < endpoint.COMPLETE


@pytest.mark.slow  # starts the worker process
async def test_the_end_of_turn_worker_refuses_what_it_could_not_judge_in_time() -> None:
    require(espeak_available(), "espeak-ng is not installed")
    pcm = pcm16(np.concatenate([spoken_pcm(), silence(0.2)])[::3])
    await endpoint.start()
    try:
        asked = [asyncio.create_task(endpoint.decide(pcm)) for _ in range(endpoint.MAX_PENDING + 1)]
        verdicts = await asyncio.gather(*asked, return_exceptions=True)
        assert all(isinstance(v, float) for v in verdicts[:-1])
        assert isinstance(verdicts[-1], endpoint.DeciderBusy)
        assert isinstance(await endpoint.decide(pcm), float)  # taken again once it is free
    finally:
        await endpoint.stop()


def test_a_model_file_that_does_not_match_its_checksum_is_refused() -> None:
    tampered = models.ModelFile("pipecat-ai", models.SILERO_VAD.path, "0" * 64)
    with pytest.raises(models.ModelUnavailable, match="SHA-256"):
        tampered.read()
    with pytest.raises(models.ModelUnavailable, match="not installed"):
        models.ModelFile("no-such-package-here", "x.onnx", "0" * 64).read()


@asynccontextmanager
async def voice_server(
    sqlite_url: str, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, **overrides: Any
) -> AsyncIterator[LiveServer]:
    """The app with the fake OpenAI, calls on loopback, a quick greeting."""
    require(espeak_available(), "espeak-ng is not installed")
    monkeypatch.setenv("RTC_ICE_LOOPBACK", "1")
    monkeypatch.setenv("VOICE_GREETING_DELAY_MS", "100")
    # the model's verdict is waited for however busy the machine (the behaviour under test)
    monkeypatch.setenv("TURN_DECISION_DEADLINE_MS", "5000")
    async with serve(fake_openai_settings(sqlite_url, fake, **overrides)) as live:
        yield live


@pytest.fixture
async def voice(
    sqlite_url: str, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LiveServer]:
    async with voice_server(sqlite_url, fake_openai, monkeypatch) as live:
        yield live


async def greeted_call(
    live: LiveServer, caller: Caller | None = None
) -> tuple[Any, RecordingClient, Caller]:
    call = await place_call(live)
    signaling, caller = await connect_caller(live, call, caller)
    await signaling.next("ai-audio-response", timeout=20)
    await caller.sound()
    await caller.silent_for(0.3)
    return call, signaling, caller


async def answered(session_id: str) -> list[ChatMessage]:
    """The caller's utterances the AI took as turns (each is stored, then answered)."""
    return list(await ChatMessage.filter(session_id=session_id, sender="user"))


@pytest.mark.slow  # real calls, seconds each
async def test_noise_alone_makes_no_turn(voice: LiveServer, fake_openai: FakeOpenAI) -> None:
    call, signaling, caller = await greeted_call(voice)
    try:
        await caller.play(noise_under(spoken_pcm(), 15))
        await caller.play(silence(1.6))  # the longest silence after it
        assert await answered(call.session_id) == []
        assert fake_openai.transcriptions == []  # nothing was even sent to STT
    finally:
        await caller.close()
        await signaling.close()


@pytest.mark.slow  # real calls, seconds each
async def test_speech_in_a_noise_bed_is_answered_while_the_noise_goes_on(
    voice: LiveServer,
) -> None:
    call, signaling, caller = await greeted_call(voice)
    try:
        speech = spoken_pcm()
        bed = noise_under(speech, 2 + speech.size / 48_000 + 6)
        start = 2 * 48_000
        bed[start : start + speech.size] += speech
        playing = caller.play(bed)
        reply = await signaling.next("ai-audio-response", timeout=30)
        assert reply["transcript"]
        assert not playing.done()  # answered while the noise still plays
        await playing
        assert len(await answered(call.session_id)) == 1
    finally:
        await caller.close()
        await signaling.close()


def transcribed_in_two(first: np.ndarray, rest: np.ndarray, words: tuple[str, str]) -> Any:
    """The fake STT's words for each segment of `first`, a 0.7 s pause, `rest`: told apart
    by length (a segment runs from one pause to the next, ~0.4 s of silence around the
    first half, ~0.7 s around the second)."""
    between = (first.size / 48_000 + 0.4 + rest.size / 48_000 + 0.7) / 2
    return lambda seconds: words[0] if seconds > between else words[1]


async def a_pause_mid_sentence(
    live: LiveServer, fake: FakeOpenAI, words: tuple[str, str], voice: str
) -> list[str]:
    """The turns the AI takes of a sentence said with a 700 ms pause in the middle."""
    first, rest = spoken_pcm(words[0], voice), spoken_pcm(words[1], voice)
    fake.transcript_for = transcribed_in_two(first, rest, words)
    call, signaling, caller = await greeted_call(live)
    try:
        await caller.play(np.concatenate([first, silence(0.7), rest, silence(0.1)]))
        await signaling.next("ai-audio-response", timeout=30)
        await caller.play(silence(2))  # a second answer would have started by now
        return [turn.content for turn in await answered(call.session_id)]
    finally:
        await caller.close()
        await signaling.close()


@pytest.mark.slow  # real calls, seconds each
async def test_a_pause_mid_sentence_is_one_turn(voice: LiveServer, fake_openai: FakeOpenAI) -> None:
    # Smart Turn scores the first half 0.01 (continuing: "..., and"), the whole 0.78
    words = ("My mother is seventy years old, and", "she lives alone.")
    turns = await a_pause_mid_sentence(voice, fake_openai, words, "en-us+f2")
    assert turns == [" ".join(words)]  # one turn, its two segments' words joined
    # the second segment was sent with the first one's words, to continue from
    assert [t.get("prompt") for t in fake_openai.transcriptions] == [None, words[0]]


@pytest.mark.slow  # real calls, seconds each
@pytest.mark.parametrize("read_words", [True, False], ids=["with-words", "sound-alone"])
async def test_words_left_open_keep_the_turn_when_the_sound_says_finished(
    sqlite_url: str, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, read_words: bool
) -> None:
    """espeak-ng's flat Korean sounds finished to Smart Turn at every pause (0.94 for the
    first half here); the connective ending -셔서 tells that the sentence goes on."""
    words = ("저희 어머니가 다리가 불편하셔서", "혼자 못 다니세요.")
    overrides = {"turn_transcript": read_words}
    async with voice_server(sqlite_url, fake_openai, monkeypatch, **overrides) as live:
        turns = await a_pause_mid_sentence(live, fake_openai, words, "ko")
    assert turns == ([" ".join(words)] if read_words else list(words))


@pytest.mark.slow  # real calls, seconds each
async def test_bad_input_breaks_nothing(voice: LiveServer) -> None:
    call, signaling, caller = await greeted_call(voice)
    try:
        await caller.play(silence(2))  # a muted microphone
        await caller.play(np.full(48_000, -9000.0))  # a DC offset alone
        assert await answered(call.session_id) == []
        clipped = np.clip(spoken_pcm() * 12, -32768, 32767)  # a microphone overdriven
        await caller.play(np.concatenate([clipped + 3000, silence(0.3)]))  # ... off centre
        await signaling.next("ai-audio-response", timeout=30)
        assert len(await answered(call.session_id)) == 1
        pipeline = voice.app[VOICE_CALLS].of_call(call.id)[0].pipeline
        await until(lambda: bool(pipeline.turns))
        # hanging up in the middle of a sentence
        caller.play(spoken_pcm())
    finally:
        await caller.close()
        await signaling.close()
    await until(lambda: len(voice.app[VOICE_CALLS]) == 0, timeout=40)


async def replying_call(
    live: LiveServer, caller: Caller | None = None
) -> tuple[Any, RecordingClient, Caller]:
    """A call whose AI has started speaking its (several sentences long) reply."""
    call, signaling, caller = await greeted_call(live, caller)
    caller.quiet()
    await caller.play(np.concatenate([spoken_pcm(), silence(0.3)]))
    first = await signaling.next("ai-audio-response", timeout=30)
    assert first["transcript"]
    await caller.sound()
    return call, signaling, caller


@pytest.mark.slow  # real calls, seconds each
@pytest.mark.parametrize("piece_delay", [0.0, 0.25], ids=["reply-written", "reply-streaming"])
async def test_speech_over_the_ai_stops_it_and_is_answered(
    voice: LiveServer, fake_openai: FakeOpenAI, piece_delay: float
) -> None:
    fake_openai.piece_delay = piece_delay
    call, signaling, caller = await replying_call(voice)
    try:
        caller.play(np.concatenate([spoken_pcm(), silence(0.3)]))
        interrupted = await signaling.next("ai-audio-interrupted", timeout=10)
        assert isinstance(interrupted["timestamp"], int)
        fake_openai.piece_delay = 0.0
        await caller.silent_for(0.4, timeout=3)  # far sooner than the rest of the reply

        async def two_answers() -> bool:
            rows = await ChatMessage.filter(session_id=call.session_id, sender="assistant")
            return len(rows) >= 3  # greeting, the interrupted reply, the new answer

        await until(two_answers, timeout=30)
        rows = list(await ChatMessage.filter(session_id=call.session_id).order_by("created_at"))
        senders = [r.sender for r in rows]
        assert senders[:5] == ["assistant", "user", "assistant", "user", "assistant"]
        cut, answer = rows[2], rows[4]
        assert cut.metadata and cut.metadata["interrupted"] is True
        assert cut.content and len(cut.content) < len(answer.content)
        assert answer.metadata and "interrupted" not in answer.metadata
        assert cut.metadata["replyTo"] == rows[1].id
        # the new utterance was answered with the cut reply in its context, as heard
        answering = [r for r in fake_openai.requests if "sentiment" not in str(r["messages"][0])]
        context = answering[-1]["messages"]
        assert {"role": "assistant", "content": cut.content} in context
    finally:
        await caller.close()
        await signaling.close()


@pytest.mark.slow  # real calls, seconds each
async def test_a_cough_over_the_ai_does_not_stop_it(voice: LiveServer) -> None:
    call, signaling, caller = await replying_call(voice)
    try:
        caller.play(spoken_pcm()[: int(0.12 * 48_000)])  # 120 ms of sound
        await caller.silent_for(1.0, timeout=30)  # the whole reply plays out
        rows = await ChatMessage.filter(session_id=call.session_id, sender="assistant")
        assert len(rows) == 2 and not any(r.metadata.get("interrupted") for r in rows)
        assert signaling.of("ai-audio-interrupted") == []
    finally:
        await caller.close()
        await signaling.close()


@pytest.mark.slow  # real calls, seconds each
async def test_an_endless_utterance_is_cut_and_answered(
    sqlite_url: str, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = {"max_utterance_seconds": 2}
    async with voice_server(sqlite_url, fake_openai, monkeypatch, **cap) as live:
        call, signaling, caller = await greeted_call(live)
        try:
            speech = spoken_pcm()
            endless = np.concatenate([speech] * 3)  # ~9 s without a pause
            playing = caller.play(endless)
            await signaling.next("ai-audio-response", timeout=30)
            assert not playing.done()  # answered while the caller still talks
            assert 1 <= len(await answered(call.session_id)) <= 4  # cut every 2 s of ~9
        finally:
            await caller.close()
            await signaling.close()


@pytest.mark.slow  # real calls, seconds each
async def test_without_barge_in_the_ai_finishes_then_answers(
    sqlite_url: str, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with voice_server(sqlite_url, fake_openai, monkeypatch, barge_in=False) as live:
        call, signaling, caller = await replying_call(live)
        try:
            await caller.play(np.concatenate([spoken_pcm(), silence(0.3)]))
            await signaling.next("ai-audio-response", timeout=30)  # the rest of the reply

            async def answered_twice() -> bool:
                return len(await answered(call.session_id)) == 2

            await until(answered_twice, timeout=30)
            rows = await ChatMessage.filter(session_id=call.session_id, sender="assistant")
            assert not any(r.metadata.get("interrupted") for r in rows)
            assert signaling.of("ai-audio-interrupted") == []
        finally:
            await caller.close()
            await signaling.close()


# A speakerphone without echo cancellation: what the caller hears comes back into its
# microphone 150 ms later and 12 dB softer. The fake's TTS speaks (its tone is no speech to
# the VAD, so its echo would prove nothing).
ECHO_LOSS_DB = 12
AI_SAYS = "The basic pension is paid to citizens over sixty five."


@asynccontextmanager
async def speakerphone_server(
    sqlite_url: str, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, **overrides: Any
) -> AsyncIterator[LiveServer]:
    async with voice_server(sqlite_url, fake, monkeypatch, **overrides) as live:
        fake.speech_audio = pcm_wav(pcm16(spoken_pcm(AI_SAYS)), SAMPLE_RATE)
        yield live


async def ai_messages(session_id: str) -> list[ChatMessage]:
    rows = ChatMessage.filter(session_id=session_id, sender="assistant").order_by("created_at")
    return list(await rows)


@pytest.mark.slow  # real calls, seconds each
async def test_the_ais_own_echo_neither_stops_it_nor_makes_a_turn(
    sqlite_url: str, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with speakerphone_server(sqlite_url, fake_openai, monkeypatch) as live:
        call, signaling, caller = await greeted_call(live, Caller(echo_loss_db=ECHO_LOSS_DB))
        try:
            await caller.silent_for(2.0)  # the greeting and its echo, then the longest silence
            assert await answered(call.session_id) == []  # its echo made no turn
            caller.quiet()
            await caller.play(np.concatenate([spoken_pcm(), silence(0.3)]))
            await signaling.next("ai-audio-response", timeout=30)
            await caller.sound()
            await caller.silent_for(2.0, timeout=90)  # the whole reply plays out, echoed
            assert signaling.of("ai-audio-interrupted") == []
            replies = await ai_messages(call.session_id)
            assert len(replies) == 2 and not any(r.metadata.get("interrupted") for r in replies)
            assert len(await answered(call.session_id)) == 1  # the caller's, not the echo
        finally:
            await caller.close()
            await signaling.close()


@pytest.mark.slow  # real calls, seconds each
async def test_the_caller_speaking_over_its_echo_still_stops_the_ai(
    sqlite_url: str, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with speakerphone_server(sqlite_url, fake_openai, monkeypatch) as live:
        speakerphone = Caller(echo_loss_db=ECHO_LOSS_DB)
        call, signaling, caller = await replying_call(live, speakerphone)
        try:
            caller.play(np.concatenate([spoken_pcm(), silence(0.3)]))  # at the usual level
            await signaling.next("ai-audio-interrupted", timeout=10)

            async def answered_after_the_cut() -> bool:
                replies = await ai_messages(call.session_id)
                return len(replies) >= 3 and not replies[-1].metadata.get("interrupted")

            await until(answered_after_the_cut, timeout=60)
            replies = await ai_messages(call.session_id)
            assert replies[1].metadata and replies[1].metadata["interrupted"] is True
        finally:
            await caller.close()
            await signaling.close()


def test_a_reply_starts_at_its_first_clause() -> None:
    splitter = SentenceSplitter(first_clause=True)
    pieces = ["네, 노", "인 복지 서비스를 찾으시는군요. 기초연금은, 만 65세", " 이상입니다. "]
    assert [splitter.feed(p) for p in pieces] == [
        ["네,"],  # spoken while the rest of the first sentence streams
        ["노인 복지 서비스를 찾으시는군요."],
        ["기초연금은, 만 65세 이상입니다."],  # later sentences stay whole
    ]
    assert SentenceSplitter(first_clause=True).feed("1,000원입니다. 네, ") == ["1,000원입니다."]
