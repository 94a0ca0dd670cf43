"""Text-to-speech with OpenAI's speech endpoint (tts-1), MP3 out."""

from __future__ import annotations

import openai

from server.ai.openai.client import speech_client
from server.ai.speech import SpeechError
from server.config import Settings

TTS_MODEL = "tts-1"


class OpenAITTS:
    name = "openai"
    format = "mp3"

    def __init__(self, settings: Settings, *, voice: str, model: str = TTS_MODEL) -> None:
        self.voice = voice
        self.model = model
        self._client = speech_client(settings)

    async def synthesize(self, text: str) -> bytes:
        try:
            response = await self._client.audio.speech.create(
                model=self.model,
                voice=self.voice,
                input=text,
                response_format="mp3",
            )
            audio = await response.aread()
        except openai.OpenAIError as exc:
            raise SpeechError(f"openai speech: {type(exc).__name__}: {exc}") from exc
        if not audio:
            raise SpeechError("openai speech: empty audio")
        return audio

    async def aclose(self) -> None:
        await self._client.close()
