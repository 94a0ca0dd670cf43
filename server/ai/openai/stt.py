"""Speech-to-text with OpenAI's transcription endpoint (whisper-1)."""

from __future__ import annotations

import time

import openai

from server.ai.openai.client import speech_client
from server.ai.speech import SpeechError
from server.config import Settings
from server.metrics import PROVIDER_SECONDS

STT_MODEL = "whisper-1"


class OpenAISTT:
    name = "openai"

    def __init__(self, settings: Settings, model: str = STT_MODEL) -> None:
        self.model = model
        self._client = speech_client(settings)

    async def transcribe(self, audio: bytes, *, filename: str = "audio.wav") -> str:
        # no `language`: whisper detects it, so a caller may speak Korean or English
        started = time.monotonic()
        try:
            result = await self._client.audio.transcriptions.create(
                model=self.model, file=(filename, audio)
            )
        except openai.OpenAIError as exc:
            raise SpeechError(f"openai transcription: {type(exc).__name__}: {exc}") from exc
        PROVIDER_SECONDS.labels(self.name, "stt").observe(time.monotonic() - started)
        return result.text.strip()

    async def aclose(self) -> None:
        await self._client.close()
