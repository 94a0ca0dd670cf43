"""The OpenAI client the speech providers share the settings of."""

from __future__ import annotations

import openai

from server.config import Settings


def speech_client(settings: Settings) -> openai.AsyncOpenAI:
    # Our own deadline (AI_TIMEOUT_SECONDS) bounds each request; SDK retries would spend it.
    return openai.AsyncOpenAI(
        api_key=settings.openai_api_key or "not-needed",  # an own base URL may need no key
        base_url=settings.openai_base_url,
        timeout=settings.ai_timeout_seconds,
        max_retries=0,
    )
