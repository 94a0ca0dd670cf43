"""The offline provider: no key, no network, honest about it."""

from server.ai.local.llm import LocalLLM

__all__ = ["LocalLLM"]
