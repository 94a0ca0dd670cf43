"""OpenAI (and any OpenAI-compatible server, via `OPENAI_BASE_URL`)."""

from server.ai.openai.llm import OpenAILLM

__all__ = ["OpenAILLM"]
