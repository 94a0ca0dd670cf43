"""Speech-to-text with OpenAI's transcription endpoint (`STT_MODEL`: gpt-4o-mini-transcribe
by default; gpt-4o-transcribe and whisper-1 work the same way)."""

from __future__ import annotations

import time

import openai

from server.ai.openai.client import speech_client
from server.ai.speech import SpeechError
from server.config import Settings
from server.metrics import PROVIDER_SECONDS

STT_MODEL = "gpt-4o-mini-transcribe"


class OpenAISTT:
    name = "openai"

    def __init__(
        self, settings: Settings, model: str = STT_MODEL, language: str | None = None
    ) -> None:
        self.model = model
        self.language = language  # None: the model detects it
        self._client = speech_client(settings)

    async def transcribe(
        self, audio: bytes, *, filename: str = "audio.wav", prompt: str = ""
    ) -> str:
        """`prompt` (the words of the utterance's earlier segments) is the API's own way to
        continue a previous audio segment."""
        started = time.monotonic()
        try:
            result = await self._client.audio.transcriptions.create(
                model=self.model,
                file=(filename, audio),
                language=self.language or openai.omit,  # none: the model detects it
                prompt=prompt or openai.omit,
            )
        except openai.OpenAIError as exc:
            raise SpeechError(f"openai transcription: {type(exc).__name__}: {exc}") from exc
        PROVIDER_SECONDS.labels(self.name, "stt").observe(time.monotonic() - started)
        return result.text.strip()

    async def aclose(self) -> None:
        await self._client.close()
