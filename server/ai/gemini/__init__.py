"""Google Gemini (and any Gemini-API-compatible endpoint, via `GEMINI_BASE_URL`)."""

from server.ai.gemini.llm import GeminiLLM

__all__ = ["GeminiLLM"]
