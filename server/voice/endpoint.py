"""Semantic end of turn: has the caller finished, judging by how their last 8 s sound?

Smart Turn v3.2 (`models.SMART_TURN`, Whisper-tiny encoder + classifier, 23 languages
including Korean) reads the intonation and rhythm of the end of the utterance: a falling,
finished phrase scores high, a rising or trailing one ("I want to know about, ...") low.
It costs 80-200 ms of CPU per decision on this machine, so it runs only once the caller has
paused (`turns.Pause`), and in a worker process of its own (one for the server, started with
the first call, its niceness +10 over the server's): decisions queue behind each other
rather than crowd the event loop (which paces every call's audio) off the two cores; on a
busy machine they wait, and the longest silence ends the turn instead. A process, not a thread: the
numpy and Python steps of a decision hold the GIL, and a thread of lower priority holding
it on a busy machine stalled every call's audio (thousands of late frames at 10 calls in
the voice bench); a thread of equal priority still competes with the loop for it.

The features are Whisper's log-mel spectrogram (80 mels, 8 s at 16 kHz, normalized
waveform), computed here with numpy as `transformers.WhisperFeatureExtractor` and
pipecat's vendored copy of it do (Apache-2.0 / BSD-2-Clause).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np
import onnxruntime as ort

from server.voice import models

RATE = 16_000
WINDOW_SAMPLES = 8 * RATE
COMPLETE = 0.5  # the model's probability above which the turn is over
_N_FFT, _HOP, _N_MELS = 400, 160, 80
DECIDER_NICENESS = 10  # added to the server's: the calls' audio pacing comes first
# Decisions running or waiting in the worker: one more would come too late to matter (each
# takes ~0.1-0.2 s and a verdict is wanted within TURN_DECISION_DEADLINE_MS), and its CPU
# would come from the calls' audio. `decide` refuses it: the pipeline treats it as a
# verdict that missed its deadline.
MAX_PENDING = 2

_pool: ProcessPoolExecutor | None = None
_pending: set[Future[float]] = set()
_worker_model: ort.InferenceSession | None = None  # in the worker process


def _mel_filters() -> np.ndarray:
    """Slaney-scale triangular filters, (201 frequency bins, 80 mels)."""

    def to_mel(hz: np.ndarray) -> np.ndarray:
        mel = 3.0 * hz / 200.0
        log = hz >= 1000.0
        mel[log] = 15.0 + np.log(hz[log] / 1000.0) * (27.0 / np.log(6.4))
        return mel

    def to_hz(mel: np.ndarray) -> np.ndarray:
        hz = 200.0 * mel / 3.0
        log = mel >= 15.0
        hz[log] = 1000.0 * np.exp(np.log(6.4) / 27.0 * (mel[log] - 15.0))
        return hz

    edges = np.array([0.0, RATE / 2.0])
    low, high = to_mel(edges)
    filter_hz = to_hz(np.linspace(low, high, _N_MELS + 2))
    fft_hz = np.linspace(0, RATE // 2, _N_FFT // 2 + 1)
    slopes = filter_hz[None, :] - fft_hz[:, None]
    down = -slopes[:, :-2] / np.diff(filter_hz)[:-1]
    up = slopes[:, 2:] / np.diff(filter_hz)[1:]
    filters = np.maximum(0.0, np.minimum(down, up))
    return filters * (2.0 / (filter_hz[2:] - filter_hz[:-2]))[None, :]


_MELS = _mel_filters()
_HANN = np.hanning(_N_FFT + 1)[:-1]


def features(pcm: bytes) -> np.ndarray:
    """(1, 80, 800) log-mel features of the last 8 s of s16 16 kHz PCM (left-padded)."""
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32)[-WINDOW_SAMPLES:] / 32768.0
    audio = np.pad(audio, (WINDOW_SAMPLES - audio.size, 0))
    audio = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
    padded = np.pad(audio.astype(np.float64), (_N_FFT // 2, _N_FFT // 2), mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, _N_FFT)[::_HOP]
    power = np.abs(np.fft.rfft(windows * _HANN, axis=-1)) ** 2
    log_mel = np.log10(np.maximum(1e-10, _MELS.T @ power.T))[:, :-1]
    log_mel = np.maximum(log_mel, log_mel.max() - 8.0)
    return ((log_mel + 4.0) / 4.0).astype(np.float32)[None]


def completion(model: ort.InferenceSession, pcm: bytes) -> float:
    """Probability that the turn in `pcm` is complete. Blocking (~0.1 s): call in a thread."""
    out = model.run(None, {"input_features": features(pcm)})
    return float(np.asarray(out[0]).reshape(-1)[0])


def _start_worker() -> None:
    global _worker_model
    if hasattr(os, "nice"):
        os.nice(DECIDER_NICENESS)
    _worker_model = models.session(models.SMART_TURN)  # raises ModelUnavailable


def _decide_in_worker(pcm: bytes) -> float:
    assert _worker_model is not None
    return completion(_worker_model, pcm)


def _ready() -> bool:
    return True


def _decider() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),  # not a fork of a threaded server
            initializer=_start_worker,
        )
    return _pool


async def start() -> None:
    """Start the worker and load the model there (~1 s the first time); raises if it
    cannot (the model missing or altered: `concurrent.futures.process.BrokenProcessPool`)."""
    await asyncio.get_running_loop().run_in_executor(_decider(), _ready)


class DeciderBusy(Exception):
    """MAX_PENDING decisions are already running or waiting."""


async def decide(pcm: bytes) -> float:
    """`completion` of `pcm`, in the worker process; `DeciderBusy` when it has enough to do.
    Cancelled before the worker starts on it, the decision is dropped from its queue."""
    _pending.difference_update([f for f in _pending if f.done()])
    if len(_pending) >= MAX_PENDING:
        raise DeciderBusy()
    future = _decider().submit(_decide_in_worker, pcm)
    _pending.add(future)
    return await asyncio.wrap_future(future)


async def stop() -> None:
    """End the worker (the server shuts down); the next call starts another."""
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
