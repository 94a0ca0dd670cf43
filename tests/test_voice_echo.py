"""The echo guard on its own: the AI's speech as the track sent it, and the caller's
microphone hearing it back (delayed, softer), with or without the caller talking over it."""

from __future__ import annotations

import numpy as np
import pytest

from server.voice.echo import ECHO_PATH_SECONDS, EchoGuard, SentLevels, chunk_level, unit_levels
from server.voice.outbound import FRAME_SAMPLES, SAMPLE_RATE
from server.voice.vad import CHUNK_SAMPLES, GATE_DBFS
from tests.conftest import require
from tests.support.voice_client import espeak_available, pcm16, silence, spoken_pcm

AI_SAYS = "The basic pension is paid to citizens over sixty five. Call the hotline to apply."
CHUNK_SECONDS = CHUNK_SAMPLES / 16_000
CONFIRM_CHUNKS = 8  # BARGE_IN_MS (250 ms) of 32 ms chunks


def microphone(ai: np.ndarray, delay: float, loss_db: float) -> np.ndarray:
    """What the caller's microphone picks up of the loudspeaker playing `ai`."""
    echo = np.concatenate([np.zeros(int(delay * SAMPLE_RATE)), ai * 10 ** (-loss_db / 20)])
    return echo[: ai.size]


def chunks(mic: np.ndarray) -> list[tuple[float, bytes, bool]]:
    """The microphone at 16 kHz as the VAD's chunks: each with the time it arrived (its end)
    and whether it has sound in it (above the VAD's gate: speech, for these tests)."""
    pcm = pcm16(mic[::3])
    size = CHUNK_SAMPLES * 2
    pieces = [pcm[n * size : (n + 1) * size] for n in range(len(pcm) // size)]
    return [((n + 1) * CHUNK_SECONDS, c, chunk_level(c) > GATE_DBFS) for n, c in enumerate(pieces)]


def the_callers(
    ai: np.ndarray | None, mic: np.ndarray, ai_from: float = 0.0
) -> tuple[int, list[float]]:
    """The AI's track sending `ai` from `ai_from` (one 20 ms unit at a time) while every chunk
    of `mic` goes through the guard, as in the pipeline: (how many chunks had sound, when the
    ones judged the caller's arrived)."""
    levels = [] if ai is None else unit_levels(pcm16(ai), FRAME_SAMPLES)
    unit_seconds = FRAME_SAMPLES / SAMPLE_RATE
    track = SentLevels()
    guard = EchoGuard(track)
    sent = 0
    sound, theirs = 0, []
    for at, chunk, speech in chunks(mic):
        while sent < len(levels) and ai_from + sent * unit_seconds <= at:
            track.record(ai_from + sent * unit_seconds, levels[sent])
            sent += 1
        sound += speech
        if guard.callers(chunk, speech, at):
            theirs.append(at)
    return sound, theirs


@pytest.fixture(scope="module")
def ai() -> np.ndarray:
    require(espeak_available(), "espeak-ng is not installed")
    return np.concatenate([spoken_pcm(AI_SAYS), silence(1)])


@pytest.mark.parametrize(("delay", "loss_db"), [(0.1, 10), (0.15, 12), (0.3, 10), (0.2, 20)])
def test_the_ais_voice_coming_back_is_echo(ai: np.ndarray, delay: float, loss_db: float) -> None:
    sound, theirs = the_callers(ai, microphone(ai, delay, loss_db))
    assert sound > 50 and theirs == []


def test_the_caller_speaking_over_the_echo_is_the_caller(ai: np.ndarray) -> None:
    mic = microphone(ai, 0.15, 12)
    caller = spoken_pcm()  # as loud as the AI's voice, as a caller at the phone is
    start = int(0.5 * SAMPLE_RATE)
    mic[start : start + caller.size] += caller[: mic.size - start]
    ends = (start + caller.size) / SAMPLE_RATE
    _, theirs = the_callers(ai, mic)
    over = [at for at, _, sound in chunks(mic) if sound and 0.5 < at <= ends]
    assert len(theirs) > len(over) / 2
    # enough of them, soon enough, to confirm a barge-in within the first second
    assert len([at for at in theirs if at < 1.5]) >= CONFIRM_CHUNKS


def test_a_soft_caller_over_the_ai_without_its_echo_is_the_caller(ai: np.ndarray) -> None:
    """The browser cancelled the echo: the caller, 20 dB softer than the AI's voice, is
    softer than any echo could be, but follows their own syllables, not the AI's."""
    caller = spoken_pcm("My mother is seventy years old and she lives alone") / 10
    mic = np.zeros(ai.size)
    mic[int(0.3 * SAMPLE_RATE) :][: caller.size] = caller
    sound, theirs = the_callers(ai, mic)
    assert len(theirs) > 0.7 * sound


def test_with_the_ai_silent_everything_passes(ai: np.ndarray) -> None:
    mic = microphone(ai, 0.15, 12)
    sound, theirs = the_callers(None, mic)
    assert len(theirs) == sound
    # the AI stopped longer ago than any echo takes: even its own echo would pass
    sound, theirs = the_callers(ai, mic, ai_from=-(ai.size / SAMPLE_RATE + ECHO_PATH_SECONDS))
    assert len(theirs) == sound
