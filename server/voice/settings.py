"""The voice pipeline's settings, taken from `Settings` once per call manager."""

from __future__ import annotations

from dataclasses import dataclass

from server.calls.rtc import stun_server_urls
from server.config import Settings


@dataclass(frozen=True, slots=True)
class VoiceSettings:
    # Only 127.0.0.1 as the AI peer's host candidate and no STUN server: media stays on
    # this machine (tests, a browser on the same host). aioice skips loopback by default.
    ice_loopback: bool = False
    stun_server_urls: tuple[str, ...] = ()  # STUN_SERVER_URL, as browsers get it
    vad_silence_ms: int = 500  # this much silence after speech ends an utterance
    vad_min_speech_ms: int = 200  # shorter bursts (a click, a cough) are not utterances
    vad_aggressiveness: int = 2  # webrtcvad mode 0..3: higher drops more noise as non-speech
    greeting_delay_ms: int = 2000  # after media connects; TTS time comes on top (~2-3 s)
    max_turns_per_minute: int = 20  # utterances answered per call (MAX_VOICE_TURNS_PER_MINUTE)

    @classmethod
    def from_settings(cls, settings: Settings) -> VoiceSettings:
        return cls(
            ice_loopback=settings.rtc_ice_loopback,
            stun_server_urls=tuple(stun_server_urls(settings)),
            vad_silence_ms=settings.vad_silence_ms,
            vad_min_speech_ms=settings.vad_min_speech_ms,
            vad_aggressiveness=settings.vad_aggressiveness,
            greeting_delay_ms=settings.voice_greeting_delay_ms,
            max_turns_per_minute=settings.max_voice_turns_per_minute,
        )
