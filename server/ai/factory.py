"""Pick the chat model and the speech providers from settings."""

from __future__ import annotations

import logging

from server.ai.base import LLM
from server.ai.speech import Speech
from server.config import ProviderName, Settings

log = logging.getLogger(__name__)


def create_llm(
    settings: Settings, provider: ProviderName | None = None, model: str | None = None
) -> LLM:
    """The configured provider, or `provider`/`model` when a caller asks for a specific one
    (an agent's own configuration). A provider without its key falls back to `local`."""
    chosen = provider or settings.provider
    # an OpenAI-compatible server of one's own (OPENAI_BASE_URL) may need no key
    if chosen == "openai" and (settings.openai_api_key or settings.openai_base_url):
        from server.ai.openai import OpenAILLM

        return OpenAILLM(
            api_key=settings.openai_api_key or "not-needed",
            model=model or settings.openai_model,
            base_url=settings.openai_base_url,
            timeout=settings.ai_timeout_seconds,
        )
    if chosen == "gemini" and settings.gemini_api_key:
        from server.ai.gemini import GeminiLLM
        from server.ai.gemini.llm import Generation

        return GeminiLLM(
            api_key=settings.gemini_api_key,
            model=model or settings.gemini_model,
            base_url=settings.gemini_base_url,
            timeout=settings.ai_timeout_seconds,
            generation=Generation(
                temperature=settings.gemini_temperature,
                top_p=settings.gemini_top_p,
                top_k=settings.gemini_top_k,
                max_output_tokens=settings.gemini_max_output_tokens,
            ),
        )
    if chosen != "local":
        log.warning("no API key for the %s provider: answering with the local one", chosen)
    from server.ai.local import LocalLLM

    return LocalLLM()


def create_speech(settings: Settings) -> Speech:
    """OpenAI speech when the `openai` provider is usable (a key or an own base URL), else
    the offline pair. Gemini has no speech API here: it gets the offline pair too."""
    if settings.provider == "openai" and (settings.openai_api_key or settings.openai_base_url):
        from server.ai.openai.stt import OpenAISTT
        from server.ai.openai.tts import OpenAITTS

        return Speech(
            OpenAISTT(settings),
            OpenAITTS(settings, voice=settings.tts_voice),
        )
    from server.ai.local.stt import PocketsphinxSTT
    from server.ai.local.tts import EspeakTTS

    return Speech(PocketsphinxSTT(), EspeakTTS())
