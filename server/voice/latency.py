"""Where the time of one turn goes: end of speech -> first AI audio frame out.

All marks are `time.monotonic()` seconds. A turn is reported once its first audio frame has
gone out and the model's whole reply is in (usually later: speech starts on the first
sentence): one `voice turn latency` log line, and the `mobok_voice_stage_seconds` histogram.

    end_of_utterance  last speech frame -> the turn is judged over (the pause, then the
                      end-of-turn model; or the longest silence)
    decision          the end-of-turn model's own time (part of end_of_utterance)
    stt               the speech-to-text call
    llm_wait          time spent waiting on the model until its first sentence is complete
    tts               the text-to-speech call for that sentence
    overhead          first_audio minus all of the above: the server's own time (resampling,
                      queues, the database, tools, decoding, the next 20 ms frame slot)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from server.calls.timing import ModelClock
from server.metrics import VOICE_STAGE_SECONDS

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TurnTimings:
    speech_ended: float  # the last speech frame arrived
    turn_detected: float  # the silence rule fired
    call_id: str = ""
    turn: int = 0  # 1 for the call's first answered utterance
    decision_seconds: float | None = None  # the end-of-turn model, when it ended the turn
    stt_seconds: float | None = None
    stt_done: float | None = None
    model: ModelClock = field(default_factory=ModelClock)
    first_sentence: float | None = None  # the model's first complete sentence
    llm_wait: float | None = None  # seconds waited on the model until then
    tts_first_byte: float | None = None  # the first sentence's first audio byte arrived
    tts_seconds: float | None = None  # the first sentence's whole synthesis
    tts_first_audio: float | None = None  # the first sentence's audio is synthesized
    first_audio_out: float | None = None  # its first frame left through the track
    reported: bool = False

    def mark(self, name: str, at: float) -> None:
        if getattr(self, name) is None:
            setattr(self, name, at)

    def stt_finished(self, started: float, at: float) -> None:
        self.stt_seconds = at - started
        self.stt_done = at

    def sentence_ready(self, at: float) -> None:
        if self.first_sentence is None:
            self.first_sentence = at
            self.llm_wait = self.model.waited

    def synthesized(self, started: float, at: float) -> None:
        if self.tts_first_audio is None:
            self.tts_seconds = at - started
            self.tts_first_audio = at

    def audio_out(self, at: float) -> None:
        """The first frame of the reply went out (called from the outgoing track)."""
        self.mark("first_audio_out", at)
        self._report_when_complete()

    def reply_finished(self) -> None:
        self._report_when_complete()

    @property
    def total(self) -> float | None:
        """End of speech -> first AI audio frame out, seconds."""
        if self.first_audio_out is None:
            return None
        return self.first_audio_out - self.speech_ended

    @property
    def end_of_utterance(self) -> float:
        return self.turn_detected - self.speech_ended

    @property
    def overhead(self) -> float | None:
        """`total` minus the VAD wait and provider time: what the server itself took."""
        parts = (self.total, self.stt_seconds, self.llm_wait, self.tts_seconds)
        if any(p is None for p in parts):
            return None
        total, stt, llm, tts = (p or 0.0 for p in parts)
        return total - self.end_of_utterance - stt - llm - tts

    def breakdown_ms(self) -> dict[str, float | None]:
        """Durations, and the marks as milliseconds after the end of speech."""
        return {
            "end_of_utterance": _ms(self.end_of_utterance),
            "end_of_turn_decision": _ms(self.decision_seconds),
            "stt": _ms(self.stt_seconds),
            "llm_first_token": _ms(_since(self.model.started, self.model.first_token)),
            "llm_wait": _ms(self.llm_wait),
            "tts_first_byte": _ms(_since(self._tts_started, self.tts_first_byte)),
            "tts": _ms(self.tts_seconds),
            "first_audio": _ms(self.total),
            "reply_done": _ms(_since(self.speech_ended, self.model.done)),
            "overhead": _ms(self.overhead),
            # marks, ms after the end of speech
            "turn_detected": _ms(self.end_of_utterance),
            "stt_done": _ms(_since(self.speech_ended, self.stt_done)),
            "first_sentence": _ms(_since(self.speech_ended, self.first_sentence)),
            "tts_first_audio": _ms(_since(self.speech_ended, self.tts_first_audio)),
            "first_audio_out": _ms(self.total),
        }

    @property
    def _tts_started(self) -> float | None:
        if self.tts_first_audio is None or self.tts_seconds is None:
            return None
        return self.tts_first_audio - self.tts_seconds

    def _report_when_complete(self) -> None:
        if self.reported or self.first_audio_out is None or self.model.done is None:
            return
        self.reported = True
        VOICE_STAGE_SECONDS.labels("end_of_utterance").observe(self.end_of_utterance)
        VOICE_STAGE_SECONDS.labels("first_audio").observe(self.total or 0.0)
        if self.decision_seconds is not None:
            VOICE_STAGE_SECONDS.labels("end_of_turn_decision").observe(self.decision_seconds)
        overhead = self.overhead
        if overhead is not None:
            VOICE_STAGE_SECONDS.labels("overhead").observe(max(0.0, overhead))
        extra: dict[str, object] = {"callId": self.call_id, "turn": self.turn}
        log.info("voice turn latency", extra={**extra, **self.breakdown_ms()})


def _since(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)
