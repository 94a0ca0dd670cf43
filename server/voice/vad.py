"""Voice activity: is each 20 ms of 16 kHz mono PCM speech?

webrtcvad (the WebRTC project's GMM detector) rather than Silero: measured here at 5 us per
20 ms frame against Silero's 357 us per 32 ms chunk, no model file to ship, already a
dependency. Silero is better in steady noise (see docs/voice.md); the browser's noise
suppression and the 30 s utterance cap (`turns`) cover that case. The end of an utterance
is decided over many frames (`turns`), which evens out single-frame mistakes.
"""

from __future__ import annotations

import webrtcvad

FRAME_MS = 20


class SpeechDetector:
    """Cuts PCM into 20 ms frames (keeping the remainder) and classifies each. Blocking."""

    def __init__(self, aggressiveness: int = 2, rate: int = 16_000) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self._rate = rate
        self._frame_bytes = rate * FRAME_MS // 1000 * 2
        self._pending = b""

    def __call__(self, pcm: bytes) -> list[tuple[bytes, bool]]:
        data = self._pending + pcm
        usable = len(data) - len(data) % self._frame_bytes
        self._pending = data[usable:]
        return [
            (frame, self._vad.is_speech(frame, self._rate))
            for frame in (
                data[i : i + self._frame_bytes] for i in range(0, usable, self._frame_bytes)
            )
        ]
