"""One AI turn: the model, the tools it calls, and the model again, until it answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from server.ai.base import LLM, PromptMessage, ProviderError, TextDelta
from server.chat.tools import Toolbox
from server.errors import AI_FAILED, ChatError

log = logging.getLogger(__name__)

DeltaSink = Callable[[str], Awaitable[None]]
MAX_TOOL_ROUNDS = 3


@dataclass(slots=True)
class TurnResult:
    text: str
    tools_used: list[dict[str, str]] = field(default_factory=list)


async def run_turn(
    llm: LLM,
    toolbox: Toolbox,
    messages: Sequence[PromptMessage],
    on_delta: DeltaSink | None = None,
) -> TurnResult:
    """Stream the reply; the deltas passed to `on_delta` add up to the returned text."""
    conversation = list(messages)
    result = TurnResult(text="")
    for round_no in range(MAX_TOOL_ROUNDS + 1):
        tools = toolbox.specs if round_no < MAX_TOOL_ROUNDS else []
        round_text: list[str] = []
        calls = []
        async for event in llm.stream(conversation, tools):
            if isinstance(event, TextDelta):
                if not event.text:
                    continue
                if not round_text and result.text:
                    # a new paragraph after the text that preceded a tool call
                    await _emit(on_delta, "\n\n")
                    result.text += "\n\n"
                round_text.append(event.text)
                result.text += event.text
                await _emit(on_delta, event.text)
            else:
                calls.append(event)
        if not calls:
            if not result.text.strip():
                raise ProviderError("the model returned an empty reply")
            return result
        conversation.append(
            PromptMessage("assistant", "".join(round_text), tool_calls=tuple(calls))
        )
        for call in calls:
            output = await toolbox.call(call)
            result.tools_used.append({"name": call.name, "arguments": call.arguments})
            conversation.append(PromptMessage("tool", output, tool_call_id=call.id))
    raise ProviderError("the model kept calling tools")


async def _emit(sink: DeltaSink | None, text: str) -> None:
    if sink is not None:
        await sink(text)


async def answer_within(
    llm: LLM,
    toolbox: Toolbox,
    messages: Sequence[PromptMessage],
    on_delta: DeltaSink | None,
    *,
    timeout: float,
    log_context: dict[str, str],
) -> TurnResult:
    """`run_turn` bounded by `timeout` (AI_TIMEOUT_SECONDS). Any failure of the model or its
    tools is logged with `log_context` and becomes the contract's `AI 응답 생성에 실패했습니다`."""
    try:
        async with asyncio.timeout(timeout):
            return await run_turn(llm, toolbox, messages, on_delta)
    except Exception as exc:
        log.warning("AI turn failed", extra={**log_context, "provider": llm.name}, exc_info=exc)
        raise ChatError(AI_FAILED) from exc
