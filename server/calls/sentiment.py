"""Sentiment of what the caller said: positive / neutral / negative with a 0..1 score.

The score is positivity (0 very negative, 0.5 neutral, 1 very positive). With a model
provider that has a key, the model judges (asked for JSON); offline, or when the model's
answer is unusable, a Korean and English lexicon does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from typing import Literal

from server.ai.base import LLM, PromptMessage, TextDelta
from server.calls.lexicon import lexicon_score

log = logging.getLogger(__name__)

Label = Literal["positive", "neutral", "negative"]
SENTIMENT_PROMPT = (
    "You are a sentiment classifier for a Korean phone counseling service. Classify the "
    "sentiment of the user's message. Answer with JSON only, no other text: "
    '{"sentiment": "positive" | "neutral" | "negative", "score": <number from 0 to 1, '
    "0 very negative, 0.5 neutral, 1 very positive>}"
)
_JSON_OBJECT = re.compile(r"\{.*?\}", re.DOTALL)
MODEL_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Sentiment:
    sentiment: Label
    score: float


def from_score(score: float) -> Sentiment:
    score = round(min(1.0, max(0.0, score)), 2)
    label: Label = "positive" if score >= 0.6 else "negative" if score <= 0.4 else "neutral"
    return Sentiment(label, score)


class SentimentAnalyzer:
    def __init__(self, llm: LLM | None = None, timeout: float = MODEL_TIMEOUT_SECONDS) -> None:
        self.llm = llm  # None: the lexicon only
        self.timeout = timeout

    async def analyze(self, text: str) -> Sentiment:
        if self.llm is not None and text.strip():
            try:
                async with asyncio.timeout(self.timeout):
                    judged = await self._ask_model(self.llm, text)
                if judged is not None:
                    return judged
            except Exception as exc:
                log.warning("sentiment model failed: %s", type(exc).__name__)
        return from_score(lexicon_score(text))

    async def _ask_model(self, llm: LLM, text: str) -> Sentiment | None:
        prompt = [PromptMessage("system", SENTIMENT_PROMPT), PromptMessage("user", text)]
        answer = "".join([e.text async for e in llm.stream(prompt, []) if isinstance(e, TextDelta)])
        found = _JSON_OBJECT.search(answer)
        if found is None:
            return None
        try:
            data = json.loads(found.group())
            label, score = data["sentiment"], float(data["score"])
        except (ValueError, KeyError, TypeError):
            return None
        if label not in ("positive", "neutral", "negative") or not 0 <= score <= 1:
            return None
        return Sentiment(label, round(score, 2))
