"""The speech interfaces: speech-to-text and text-to-speech (`server.ai.factory` picks them).

Like the chat models (`server.ai.base`), every provider implements one small interface:
`openai` (`STT_MODEL`, `TTS_MODEL`) and `local` (offline: Whisper base, espeak-ng).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

FirstByte = Callable[[], None]


class STT(Protocol):
    name: str

    async def transcribe(
        self, audio: bytes, *, filename: str = "audio.wav", prompt: str = ""
    ) -> str:
        """The text spoken in `audio` (any container PyAV/the provider reads: wav, webm,
        mp3, ogg); `filename` tells the provider the format. '' when nothing was said.
        `prompt`: the words said just before (an earlier segment of the same utterance),
        for a provider that continues from them."""
        ...


class TTS(Protocol):
    name: str
    format: str  # 'mp3' (openai) or 'wav' (local)

    async def synthesize(self, text: str, *, on_first_byte: FirstByte | None = None) -> bytes:
        """`text` spoken, as one complete audio file in `format`. `on_first_byte()` runs
        when the provider's first audio byte arrives (latency figures)."""
        ...


class SpeechError(Exception):
    """Speech-to-text or text-to-speech failed, or is unavailable (espeak-ng missing)."""


@dataclass(frozen=True, slots=True)
class Speech:
    stt: STT
    tts: TTS

    async def warm_up(self) -> None:
        """Load what takes long to load (the offline recognizer's model) now, not at the
        first utterance. Failures are logged by the provider and retried when used."""
        warm_up = getattr(self.stt, "warm_up", None)
        if warm_up is not None:
            try:
                await warm_up()
            except SpeechError:
                pass

    async def aclose(self) -> None:
        for part in (self.stt, self.tts):
            close = getattr(part, "aclose", None)
            if close is not None:
                await close()
