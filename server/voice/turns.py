"""Turn taking: an utterance ends after `silence_ms` without speech.

Speech shorter than `min_speech_ms` (a click, a cough, a bump of the microphone) is not an
utterance. A little audio from before the first speech frame is kept, as the VAD is late
on soft onsets and STT misses the first syllable without it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from server.voice.vad import FRAME_MS

PRE_ROLL_MS = 200
MAX_UTTERANCE_MS = 30_000  # a caller who never pauses is still answered


@dataclass(frozen=True, slots=True)
class Utterance:
    pcm: bytes  # 16 kHz mono s16
    speech_ended_at: float  # monotonic: when the last speech frame arrived
    detected_at: float  # monotonic: when the silence rule fired

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / 16_000


class TurnDetector:
    def __init__(self, silence_ms: int = 500, min_speech_ms: int = 200) -> None:
        self._silence_frames = max(1, silence_ms // FRAME_MS)
        self._min_speech_frames = max(1, min_speech_ms // FRAME_MS)
        self._max_frames = MAX_UTTERANCE_MS // FRAME_MS
        self._pre_roll: deque[bytes] = deque(maxlen=PRE_ROLL_MS // FRAME_MS)
        self._frames: list[bytes] = []
        self._speech_frames = 0
        self._silent_run = 0
        self._last_speech_at = 0.0

    @property
    def in_speech(self) -> bool:
        return bool(self._frames)

    def feed(self, frame: bytes, is_speech: bool, now: float) -> Utterance | None:
        """One 20 ms frame; returns the utterance it completes, if any."""
        if not self._frames:
            if not is_speech:
                self._pre_roll.append(frame)
                return None
            self._frames = [*self._pre_roll, frame]
            self._pre_roll.clear()
        else:
            self._frames.append(frame)
        if is_speech:
            self._speech_frames += 1
            self._silent_run = 0
            self._last_speech_at = now
        else:
            self._silent_run += 1
        if self._silent_run >= self._silence_frames or len(self._frames) >= self._max_frames:
            return self._finish(now)
        return None

    def _finish(self, now: float) -> Utterance | None:
        frames, speech = self._frames, self._speech_frames
        self._frames, self._speech_frames, self._silent_run = [], 0, 0
        if speech < self._min_speech_frames:
            return None
        return Utterance(b"".join(frames), self._last_speech_at, now)
