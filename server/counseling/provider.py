"""Which model counsels: Gemini when a key is set (the source system ran on Gemini), else the
configured provider, with the offline counselor standing in for the `local` one."""

from __future__ import annotations

from server.ai.base import LLM
from server.ai.factory import create_llm
from server.config import Settings
from server.counseling.offline import OfflineCounselor


def counseling_llm(settings: Settings, configured: LLM) -> LLM:
    """A model for this endpoint; the caller closes it when it is not `configured`."""
    llm = configured
    if settings.gemini_api_key and configured.name != "gemini":
        llm = create_llm(settings, provider="gemini")
    # the shared offline provider is a welfare search helper, not a counselor
    return OfflineCounselor() if llm.name == "local" else llm
