"""Text-to-speech with OpenAI's speech endpoint (`TTS_MODEL`: gpt-4o-mini-tts by default,
tts-1 and tts-1-hd work the same way), MP3 out.

The audio is read as it streams in, so the time to its first byte is known (the provider's
own latency, apart from the length of what it says).
"""

from __future__ import annotations

import time

import openai

from server.ai.openai.client import speech_client
from server.ai.speech import FirstByte, SpeechError
from server.config import Settings
from server.metrics import PROVIDER_SECONDS

TTS_MODEL = "gpt-4o-mini-tts"


class OpenAITTS:
    name = "openai"
    format = "mp3"

    def __init__(self, settings: Settings, *, voice: str, model: str = TTS_MODEL) -> None:
        self.voice = voice
        self.model = model
        self._client = speech_client(settings)

    async def synthesize(self, text: str, *, on_first_byte: FirstByte | None = None) -> bytes:
        started = time.monotonic()
        chunks: list[bytes] = []
        try:
            async with self._client.audio.speech.with_streaming_response.create(
                model=self.model,
                voice=self.voice,
                input=text,
                response_format="mp3",
            ) as response:
                async for chunk in response.iter_bytes():
                    if not chunk:
                        continue
                    if not chunks:
                        PROVIDER_SECONDS.labels(self.name, "tts_first_byte").observe(
                            time.monotonic() - started
                        )
                        if on_first_byte is not None:
                            on_first_byte()
                    chunks.append(chunk)
        except openai.OpenAIError as exc:
            raise SpeechError(f"openai speech: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # the transport's own error: the body broke off midway
            raise SpeechError(f"openai speech: {type(exc).__name__}: {exc}") from exc
        if not chunks:
            raise SpeechError("openai speech: empty audio")
        return b"".join(chunks)

    async def aclose(self) -> None:
        await self._client.close()
