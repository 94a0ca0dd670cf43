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


def sent(ai: np.ndarray) -> SentLevels:
    """The track's record of `ai`, sent from time 0, one 20 ms unit at a time."""
    levels = SentLevels()
    for n, level in enumerate(unit_levels(pcm16(ai), FRAME_SAMPLES)):
        levels.record(n * FRAME_SAMPLES / SAMPLE_RATE, level)
    return levels


def microphone(ai: np.ndarray, delay: float, loss_db: float) -> np.ndarray:
    """What the caller's microphone picks up of the loudspeaker playing `ai`."""
    echo = np.concatenate([np.zeros(int(delay * SAMPLE_RATE)), ai * 10 ** (-loss_db / 20)])
    return echo[: ai.size]


def chunks(mic: np.ndarray) -> list[tuple[float, bytes]]:
    """The microphone at 16 kHz as the VAD's chunks, each with the time it arrived (its end)."""
    pcm = pcm16(mic[::3])
    size = CHUNK_SAMPLES * 2
    return [
        ((n + 1) * CHUNK_SECONDS, pcm[n * size : (n + 1) * size])
        for n in range(len(pcm) // size)
        if chunk_level(pcm[n * size : (n + 1) * size]) > GATE_DBFS  # sound, not silence
    ]


@pytest.fixture(scope="module")
def ai() -> np.ndarray:
    require(espeak_available(), "espeak-ng is not installed")
    return np.concatenate([spoken_pcm(AI_SAYS), silence(1)])


@pytest.mark.parametrize(("delay", "loss_db"), [(0.1, 10), (0.15, 12), (0.3, 10), (0.2, 20)])
def test_the_ais_voice_coming_back_is_echo(ai: np.ndarray, delay: float, loss_db: float) -> None:
    guard = EchoGuard(sent(ai))
    heard = chunks(microphone(ai, delay, loss_db))
    assert len(heard) > 50
    assert all(guard.is_echo(chunk, at) for at, chunk in heard)


def test_the_caller_speaking_over_the_echo_is_the_caller(ai: np.ndarray) -> None:
    guard = EchoGuard(sent(ai))
    mic = microphone(ai, 0.15, 12)
    caller = spoken_pcm()  # as loud as the AI's voice, as a caller at the phone is
    start = int(0.5 * SAMPLE_RATE)
    mic[start : start + caller.size] += caller[: mic.size - start]
    ends = (start + caller.size) / SAMPLE_RATE
    over = [(at, chunk) for at, chunk in chunks(mic) if 0.5 < at <= ends]
    theirs = [at for at, chunk in over if not guard.is_echo(chunk, at)]
    assert len(theirs) > len(over) / 3
    # enough of them, soon enough, to confirm a barge-in within the first second
    assert len([at for at in theirs if at < 1.5]) >= CONFIRM_CHUNKS


def test_with_the_ai_silent_everything_passes(ai: np.ndarray) -> None:
    mic = microphone(ai, 0.15, 12)
    assert not any(EchoGuard(SentLevels()).is_echo(chunk, at) for at, chunk in chunks(mic))
    # the AI stopped longer ago than any echo takes: even its own echo would pass
    ended = ai.size / SAMPLE_RATE
    guard = EchoGuard(sent(ai))
    late = [(ended + ECHO_PATH_SECONDS + at, chunk) for at, chunk in chunks(mic)]
    assert not any(guard.is_echo(chunk, at) for at, chunk in late)
