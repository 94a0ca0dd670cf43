"""Where the time of one turn goes: end of speech -> first AI audio frame out.

All marks are `time.monotonic()` seconds; one log line per turn once its first audio
frame has gone out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

MARKS = ("speech_ended", "turn_detected", "stt_done", "first_sentence", "tts_first_audio")


@dataclass(slots=True)
class TurnTimings:
    speech_ended: float  # the last speech frame arrived
    turn_detected: float  # the silence rule fired
    stt_done: float | None = None
    first_sentence: float | None = None  # the model's first complete sentence
    tts_first_audio: float | None = None  # the first sentence's audio is synthesized
    first_audio_out: float | None = None  # its first frame left through the track
    reported: bool = field(default=False)

    def mark(self, name: str, at: float) -> None:
        if getattr(self, name) is None:
            setattr(self, name, at)

    @property
    def total(self) -> float | None:
        """End of speech -> first AI audio frame out, seconds."""
        if self.first_audio_out is None:
            return None
        return self.first_audio_out - self.speech_ended

    def audio_out(self, at: float) -> None:
        self.mark("first_audio_out", at)
        if not self.reported:
            self.reported = True
            log.info("voice turn latency", extra=self.breakdown_ms())

    def breakdown_ms(self) -> dict[str, int | None]:
        """Milliseconds of each mark after the end of speech."""
        out: dict[str, int | None] = {}
        for name in (*MARKS[1:], "first_audio_out"):
            value = getattr(self, name)
            out[name] = None if value is None else round((value - self.speech_ended) * 1000)
        return out
