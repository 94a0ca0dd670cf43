"""The one way this server builds an OpenAI SDK client (chat, transcription, speech)."""

from __future__ import annotations

import openai


def openai_client(
    *, api_key: str | None, base_url: str | None, timeout: float
) -> openai.AsyncOpenAI:
    """The SDK over aiohttp (the SDK's own `DefaultAioHttpClient`, already our HTTP stack):
    at 1000 concurrent turns its default httpx2 transport cost 3 ms of CPU per streamed
    completion more (`make bench`, see the README).

    Our own deadline (AI_TIMEOUT_SECONDS) bounds each request; SDK retries would spend it."""
    return openai.AsyncOpenAI(
        api_key=api_key or "not-needed",  # an own base URL may need no key
        base_url=base_url,
        timeout=timeout,
        max_retries=0,
        http_client=openai.DefaultAioHttpClient(timeout=timeout),
    )
