"""Turn taking, frame by frame: when has the caller started, paused, finished?

    the first speech frame             -> SpeechOnset (the AI holds its audio)
    speech for `confirm_ms`            -> SpeechStarted (the caller is really talking:
                                          barge-in may stop the AI)
    silence for `pause_ms` (~200 ms)   -> Pause: the end-of-turn model decides (`end`)
    silence for `max_silence_ms`       -> Utterance, whatever the model said (~1.5 s)
    `max_utterance_ms` of utterance    -> Utterance (a caller who never pauses is answered)

Without a model `pause_ms` equals `max_silence_ms`: the silence alone ends the turn. Speech
shorter than `min_speech_ms` (a click, a cough) is no utterance: a false start. A little
audio from before the first speech frame is kept, as the VAD is late on soft onsets and STT
misses the first syllable without it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from server.metrics import VOICE_TURN_EVENTS
from server.voice.vad import FRAME_MS

PRE_ROLL_MS = 200


@dataclass(frozen=True, slots=True)
class SpeechOnset:
    at: float


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    at: float


@dataclass(eq=False, slots=True)
class Pause:
    pcm: bytes  # the utterance so far, 16 kHz mono s16
    utterance: int  # which utterance of the call (its onsets counted)
    speech_ended_at: float
    at: float
    transcript: asyncio.Task[str | None] | None = field(default=None)  # speculative STT


@dataclass(frozen=True, slots=True)
class Utterance:
    pcm: bytes  # 16 kHz mono s16
    speech_ended_at: float  # monotonic: when the last speech frame arrived
    detected_at: float  # monotonic: when the turn was judged over
    ended_by: str = "silence"  # 'model' | 'deadline' | 'silence' | 'cap'
    decision_seconds: float | None = None  # the end-of-turn model's time, when it decided
    transcript: asyncio.Task[str | None] | None = None  # STT started at the pause, if any

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / 16_000


Event = SpeechOnset | SpeechStarted | Pause | Utterance


class TurnDetector:
    def __init__(
        self,
        *,
        pause_ms: int = 200,
        max_silence_ms: int = 1500,
        min_speech_ms: int = 200,
        max_utterance_ms: int = 30_000,
        confirm_ms: int = 250,
    ) -> None:
        self._max_silence = max(1, max_silence_ms // FRAME_MS)
        self._pause = min(self._max_silence, max(1, pause_ms // FRAME_MS))
        self._min_speech = max(1, min_speech_ms // FRAME_MS)
        self._confirm = max(1, -(-confirm_ms // FRAME_MS))
        self._max_frames = max(1, max_utterance_ms // FRAME_MS)
        self._pre_roll: deque[bytes] = deque(maxlen=PRE_ROLL_MS // FRAME_MS)
        self._frames: list[bytes] = []
        self._speech_frames = 0
        self._silent_run = 0
        self._last_speech_at = 0.0
        self._paused: Pause | None = None  # the pause being decided, until speech resumes
        self._onsets = 0

    @property
    def in_speech(self) -> bool:
        return bool(self._frames)

    def feed(self, frame: bytes, is_speech: bool, now: float) -> Event | None:
        """One frame (FRAME_MS); returns what it completes, if anything."""
        event: Event | None = None
        if not self._frames:
            if not is_speech:
                self._pre_roll.append(frame)
                return None
            self._frames = [*self._pre_roll, frame]
            self._pre_roll.clear()
            self._onsets += 1
            event = SpeechOnset(now)
        else:
            self._frames.append(frame)
        if is_speech:
            self._speech_frames += 1
            self._silent_run = 0
            self._last_speech_at = now
            self._paused = None
            if self._speech_frames == self._confirm:
                event = SpeechStarted(now)
        else:
            self._silent_run += 1
            if self._silent_run >= self._max_silence:
                return self._finish(now, "silence")
            if self._silent_run == self._pause and self._speech_frames >= self._min_speech:
                pcm = b"".join(self._frames)
                self._paused = Pause(pcm, self._onsets, self._last_speech_at, now)
                event = self._paused
        if len(self._frames) >= self._max_frames:
            return self._finish(now, "cap")
        return event

    def end(
        self,
        pause: Pause,
        now: float,
        decision_seconds: float | None,
        ended_by: str = "model",
    ) -> Utterance | None:
        """The model judged `pause` the end of the turn (or gave no verdict in time): the
        utterance, unless the caller has spoken again since (then the turn goes on)."""
        if pause is not self._paused:
            return None
        return self._finish(now, ended_by, decision_seconds)

    def _finish(
        self, now: float, ended_by: str, decision_seconds: float | None = None
    ) -> Utterance | None:
        frames, speech, paused = self._frames, self._speech_frames, self._paused
        self._frames, self._speech_frames, self._silent_run, self._paused = [], 0, 0, None
        if speech < self._min_speech:
            VOICE_TURN_EVENTS.labels("false_start").inc()
            return None
        return Utterance(
            b"".join(frames),
            self._last_speech_at,
            now,
            ended_by,
            decision_seconds,
            paused.transcript if paused is not None else None,
        )
