"""The voice pipeline's settings, taken from `Settings` once per call manager."""

from __future__ import annotations

from dataclasses import dataclass, field

from server.calls.rtc import IceConfig, stun_server_urls
from server.config import Settings


@dataclass(frozen=True, slots=True)
class VoiceSettings:
    # Only 127.0.0.1 as the AI peer's host candidate and no STUN server: media stays on
    # this machine (tests, a browser on the same host). aioice skips loopback by default.
    ice_loopback: bool = False
    stun_server_urls: tuple[str, ...] = ()  # STUN_SERVER_URL, as browsers get it
    ice: IceConfig = field(default_factory=IceConfig)  # STUN, TURN, the transport policy
    vad_silence_ms: int = 200  # a pause this long asks the end-of-turn model
    vad_min_speech_ms: int = 200  # shorter bursts (a click, a cough) are not utterances
    vad_threshold: float = 0.5  # Silero's speech probability that starts speech
    turn_max_silence_ms: int = 1500  # this much silence ends a turn whatever the model says
    turn_model: str = "smart-turn"  # 'smart-turn' | 'none' (the silence alone decides)
    turn_transcript: bool = True  # the words of the utterance so far judge too (`wording`)
    turn_decision_deadline_ms: int = 300  # no verdict by then (a busy machine): pause ends it
    max_utterance_seconds: float = 30.0  # a longer utterance is cut and answered
    barge_in: bool = True  # the caller speaking over the AI stops it
    barge_in_ms: int = 250  # speech this long over the AI is the caller, not a cough
    echo_guard: bool = True  # the AI's own voice coming back is not the caller (`echo`)
    echo_return_loss_db: float = 6.0  # the echo comes back at least this much softer
    greeting_delay_ms: int = 2000  # after media connects; TTS time comes on top (~2-3 s)
    max_turns_per_minute: int = 20  # utterances answered per call (MAX_VOICE_TURNS_PER_MINUTE)

    @property
    def pause_ms(self) -> int:
        """Silence that ends a turn without a model, or asks the model with one."""
        if self.turn_model == "none":
            return self.vad_silence_ms
        return min(self.vad_silence_ms, self.turn_max_silence_ms)

    @property
    def max_silence_ms(self) -> int:
        if self.turn_model == "none":
            return self.vad_silence_ms
        return self.turn_max_silence_ms

    @classmethod
    def from_settings(cls, settings: Settings) -> VoiceSettings:
        return cls(
            ice_loopback=settings.rtc_ice_loopback,
            stun_server_urls=tuple(stun_server_urls(settings)),
            ice=IceConfig.from_settings(settings),
            vad_silence_ms=settings.vad_silence_ms,
            vad_min_speech_ms=settings.vad_min_speech_ms,
            vad_threshold=settings.vad_threshold,
            turn_max_silence_ms=settings.turn_max_silence_ms,
            turn_model=settings.turn_model,
            turn_transcript=settings.turn_transcript,
            turn_decision_deadline_ms=settings.turn_decision_deadline_ms,
            max_utterance_seconds=settings.max_utterance_seconds,
            barge_in=settings.barge_in,
            echo_guard=settings.echo_guard,
            echo_return_loss_db=settings.echo_return_loss_db,
            greeting_delay_ms=settings.voice_greeting_delay_ms,
            max_turns_per_minute=settings.max_voice_turns_per_minute,
        )
