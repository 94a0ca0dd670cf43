"""Voice activity: is each 32 ms of 16 kHz mono PCM speech?

Two gates, cheap first:

1. Loudness. A chunk quieter than GATE_DBFS (after removing any DC offset) is not speech,
   and the model is not asked. Most of a call is quiet on the caller's side (the browser's
   noise suppression, the caller listening), so most chunks stop here for ~5 us. In a
   noisy room, outside speech, so does a chunk within FLOOR_MARGIN_DB of the room's steady
   noise (the quietest chunk lately): speech starts louder than the noise it is heard in.
2. Silero VAD (ONNX, `models.SILERO_VAD`), ~0.2 ms of CPU per chunk on one thread: 0 % of
   pink noise at 8 dB under the voice flagged as speech, against webrtcvad's 91 % (see
   docs/voice.md). Speech starts at `threshold` and lasts while the probability stays above
   `threshold - 0.15` (Silero's own hysteresis), so a soft syllable does not end it.

The model's recurrent state starts over after a quiet stretch, as if the call began there.
Runs on the event loop: a chunk costs less than a thread hop would.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

CHUNK_SAMPLES = 512  # Silero's window at 16 kHz
FRAME_MS = 32
CONTEXT_SAMPLES = 64  # Silero v5 sees the end of the previous chunk too
GATE_DBFS = -55.0
_GATE_POWER = (32768 * 10 ** (GATE_DBFS / 20)) ** 2  # mean square of s16 samples
# The room's steady sound (a fan, air conditioning) as the quietest chunk heard lately: it
# follows a quieter chunk at once and rises FLOOR_RISE_DB_PER_S while every chunk is louder.
# Outside speech, a chunk less than FLOOR_MARGIN_DB above it is that noise again.
FLOOR_MARGIN_DB = 4.0
FLOOR_RISE_DB_PER_S = 10.0
_FLOOR_MARGIN = 10 ** (FLOOR_MARGIN_DB / 10)
_FLOOR_RISE = 10 ** (FLOOR_RISE_DB_PER_S / 10 * FRAME_MS / 1000)  # per chunk
_RATE = np.array(16_000, dtype=np.int64)


def sound_power(samples: np.ndarray) -> tuple[float, float]:
    """(mean square, mean) of float samples: the variance is the power without any DC
    offset, which is not sound."""
    mean = float(samples.mean())
    return float(np.dot(samples, samples)) / samples.size - mean * mean, mean


class SpeechDetector:
    """Cuts PCM into 32 ms chunks (keeping the remainder) and classifies each. Blocking."""

    def __init__(self, model: ort.InferenceSession, threshold: float = 0.5) -> None:
        self._model = model
        self._start = threshold
        self._stay = max(0.05, threshold - 0.15)
        self._chunk_bytes = CHUNK_SAMPLES * 2
        self._pending = b""
        self._speaking = False
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, CONTEXT_SAMPLES), dtype=np.float32)
        self._fresh = True  # the model's state is at its start
        self._floor = _GATE_POWER  # the steady noise's power (mean square)
        self.model_runs = 0  # chunks the model classified (the rest stopped at the gate)

    def __call__(self, pcm: bytes) -> list[tuple[bytes, bool]]:
        data = self._pending + pcm
        usable = len(data) - len(data) % self._chunk_bytes
        self._pending = data[usable:]
        return [
            (chunk, self._is_speech(chunk))
            for chunk in (
                data[i : i + self._chunk_bytes] for i in range(0, usable, self._chunk_bytes)
            )
        ]

    def _is_speech(self, chunk: bytes) -> bool:
        samples = np.frombuffer(chunk, dtype="<i2").astype(np.float32)
        power, mean = sound_power(samples)
        floor, self._floor = self._floor, min(power, self._floor * _FLOOR_RISE)
        if power < _GATE_POWER or (not self._speaking and power < floor * _FLOOR_MARGIN):
            self._reset()
            return False
        samples = (samples - mean) / 32768.0
        self._speaking = self.probability(samples) >= (
            self._stay if self._speaking else self._start
        )
        return self._speaking

    def probability(self, samples: np.ndarray) -> float:
        window = np.concatenate((self._context, samples.reshape(1, -1)), axis=1)
        out, self._state = self._model.run(
            None, {"input": window, "state": self._state, "sr": _RATE}
        )
        self._context = window[:, -CONTEXT_SAMPLES:]
        self._fresh = False
        self.model_runs += 1
        return float(out[0][0])

    def _reset(self) -> None:
        self._speaking = False
        if not self._fresh:
            self._state = np.zeros((2, 1, 128), dtype=np.float32)
            self._context = np.zeros((1, CONTEXT_SAMPLES), dtype=np.float32)
            self._fresh = True
