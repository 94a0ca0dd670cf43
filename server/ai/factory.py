"""Pick the chat model provider from settings."""

from __future__ import annotations

import logging

from server.ai.base import LLM
from server.config import Settings

log = logging.getLogger(__name__)


def create_llm(settings: Settings) -> LLM:
    if settings.provider == "openai":
        from server.ai.openai import OpenAILLM

        return OpenAILLM(
            api_key=settings.openai_api_key or "sk-no-key",
            model=settings.openai_model,
            base_url=settings.openai_base_url,
            timeout=settings.ai_timeout_seconds,
        )
    if settings.provider == "gemini":
        log.warning("the gemini provider is not available yet; answering with the local one")
    from server.ai.local import LocalLLM

    return LocalLLM()
