"""The OpenAI SDK client of the speech providers (chat goes over aiohttp: `llm.py`)."""

from __future__ import annotations

import openai

from server.config import Settings


def speech_client(settings: Settings) -> openai.AsyncOpenAI:
    """The SDK over its own aiohttp transport (`DefaultAioHttpClient`, already our HTTP
    stack) rather than its default httpx2 one: 5.9 rather than 9.1 ms of CPU per streamed
    chat completion, 100 at a time (README, "Benchmarks").

    Our own deadline (AI_TIMEOUT_SECONDS) bounds each request; SDK retries would spend it."""
    return openai.AsyncOpenAI(
        api_key=settings.openai_api_key or "not-needed",  # an own base URL may need no key
        base_url=settings.openai_base_url,
        timeout=settings.ai_timeout_seconds,
        max_retries=0,
        http_client=openai.DefaultAioHttpClient(timeout=settings.ai_timeout_seconds),
    )
