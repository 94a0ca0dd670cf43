"""How long one spoken reply waited on the model: for the voice latency breakdown.

`ModelClock.timed(llm)` wraps the model for one reply and counts the time spent waiting on
its stream (the request, then each event), across tool rounds. What is left of a turn once
provider time is taken out is the server's own overhead (`server.voice.latency`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from server.ai.base import LLM, LLMEvent, PromptMessage, TextDelta, ToolSpec


@dataclass(slots=True)
class ModelClock:
    """Monotonic seconds; None until it happened."""

    started: float | None = None  # the first request to the model
    first_token: float | None = None  # its first text delta
    done: float | None = None  # the whole reply is in
    waited: float = 0.0  # seconds spent waiting on the model's stream so far

    def timed(self, llm: LLM) -> LLM:
        return _TimedLLM(llm, self)


class _TimedLLM:
    def __init__(self, llm: LLM, clock: ModelClock) -> None:
        self.name = llm.name
        self._llm = llm
        self._clock = clock

    async def stream(
        self, messages: Sequence[PromptMessage], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[LLMEvent]:
        clock = self._clock
        if clock.started is None:
            clock.started = time.monotonic()
        events = aiter(self._llm.stream(messages, tools))
        try:
            while True:
                asked = time.monotonic()
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    return
                finally:
                    clock.waited += time.monotonic() - asked
                if clock.first_token is None and isinstance(event, TextDelta) and event.text:
                    clock.first_token = time.monotonic()
                yield event
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()

    async def aclose(self) -> None:
        return None  # the wrapped model belongs to the app, which closes it
