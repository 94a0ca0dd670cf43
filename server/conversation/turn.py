"""One AI turn: the model, the tools it calls, and the model again, until it answers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from server.ai.base import LLM, PromptMessage, ProviderError, TextDelta
from server.conversation.tools import Toolbox
from server.errors import ChatError
from server.metrics import PROVIDER_SECONDS
from server.safety.detector import SafetyFlag
from server.safety.layer import answers_offline, with_crisis_instruction
from server.safety.replies import crisis_reply
from server.texts import AI_FAILED

log = logging.getLogger(__name__)

DeltaSink = Callable[[str], Awaitable[None]]
MAX_TOOL_ROUNDS = 3


@dataclass(slots=True)
class TurnResult:
    text: str
    tools_used: list[dict[str, str]] = field(default_factory=list)
    safety: SafetyFlag | None = None  # the user's message was at risk: the reply has the lines


async def run_turn(
    llm: LLM,
    toolbox: Toolbox,
    messages: Sequence[PromptMessage],
    on_delta: DeltaSink | None = None,
    *,
    timeout: float | None = None,
    safety: SafetyFlag | None = None,
) -> TurnResult:
    """Stream the reply; the deltas passed to `on_delta` add up to the returned text.

    With `safety` (the message being answered is at risk, see `server.safety`) the crisis
    reply and its lines are sent first, whatever the model then says or fails to say: a
    rule-based provider adds nothing, a real model answers after it with the crisis
    instruction in its prompt, and its failure or `timeout` keeps the lines as the answer.

    The provider's share is measured here, once for every protocol: `llm_first_token` (the
    turn's first request to its first text) and `llm_total` (time in the model, tools
    excluded), in PROVIDER_SECONDS."""
    if safety is not None:
        return await _crisis_turn(llm, toolbox, messages, on_delta, timeout, safety)
    timing = _ModelTiming(llm.name)
    try:
        async with asyncio.timeout(timeout):
            return await _run_rounds(llm, toolbox, messages, on_delta, timing)
    finally:
        timing.observe_total()


async def _crisis_turn(
    llm: LLM,
    toolbox: Toolbox,
    messages: Sequence[PromptMessage],
    on_delta: DeltaSink | None,
    timeout: float | None,
    flag: SafetyFlag,
) -> TurnResult:
    result = TurnResult(text=crisis_reply(flag.category), safety=flag)
    await _emit(on_delta, result.text)
    if answers_offline(llm):
        return result
    timing = _ModelTiming(llm.name)
    prompt = with_crisis_instruction(messages, flag)
    try:
        async with asyncio.timeout(timeout):
            await _run_rounds(llm, toolbox, prompt, on_delta, timing, result)
    except Exception as exc:  # the person has the lines: the turn stands
        log_turn_failure(log, "AI turn after a crisis reply failed", exc, {"provider": llm.name})
    finally:
        timing.observe_total()
    return result


async def _run_rounds(
    llm: LLM,
    toolbox: Toolbox,
    messages: Sequence[PromptMessage],
    on_delta: DeltaSink | None,
    timing: _ModelTiming,
    result: TurnResult | None = None,
) -> TurnResult:
    conversation = list(messages)
    result = result if result is not None else TurnResult(text="")
    for round_no in range(MAX_TOOL_ROUNDS + 1):
        tools = toolbox.specs if round_no < MAX_TOOL_ROUNDS else []
        round_text: list[str] = []
        calls = []
        timing.round_started()
        async for event in llm.stream(conversation, tools):
            if isinstance(event, TextDelta):
                if not event.text:
                    continue
                timing.text_arrived()
                if not round_text and result.text:
                    # a new paragraph after the text that preceded a tool call
                    await _emit(on_delta, "\n\n")
                    result.text += "\n\n"
                round_text.append(event.text)
                result.text += event.text
                await _emit(on_delta, event.text)
            else:
                calls.append(event)
        timing.round_ended()
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


class _ModelTiming:
    __slots__ = ("_first_text", "_in_model", "_provider", "_round_started", "_started")

    def __init__(self, provider: str) -> None:
        self._provider = provider
        self._started = time.monotonic()
        self._round_started: float | None = None
        self._first_text = False
        self._in_model = 0.0

    def round_started(self) -> None:
        self._round_started = time.monotonic()

    def text_arrived(self) -> None:
        if not self._first_text:
            self._first_text = True
            elapsed = time.monotonic() - self._started
            PROVIDER_SECONDS.labels(self._provider, "llm_first_token").observe(elapsed)

    def round_ended(self) -> None:
        if self._round_started is not None:
            self._in_model += time.monotonic() - self._round_started
            self._round_started = None

    def observe_total(self) -> None:
        self.round_ended()  # a round cut short by a failure or the deadline counts too
        PROVIDER_SECONDS.labels(self._provider, "llm_total").observe(self._in_model)


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
    safety: SafetyFlag | None = None,
) -> TurnResult:
    """`run_turn` bounded by `timeout` (AI_TIMEOUT_SECONDS). Any failure of the model or its
    tools is logged with `log_context` and becomes the contract's `AI 응답 생성에 실패했습니다`
    (except after a crisis reply: see `run_turn`)."""
    try:
        return await run_turn(llm, toolbox, messages, on_delta, timeout=timeout, safety=safety)
    except Exception as exc:
        log_turn_failure(log, "AI turn failed", exc, {**log_context, "provider": llm.name})
        raise ChatError(AI_FAILED) from exc


def log_turn_failure(
    logger: logging.Logger, what: str, exc: BaseException, extra: dict[str, str]
) -> None:
    """A provider failing or timing out is an outage to see, in one line with its cause (a
    traceback per turn would flood the log); anything else is a bug, logged with its trace."""
    expected = (TimeoutError, ProviderError, ChatError)
    if isinstance(exc, expected):
        cause = exc.__cause__ if isinstance(exc, ChatError) and exc.__cause__ else exc
        if isinstance(cause, expected) or not isinstance(exc, ChatError):
            reason = "timed out" if isinstance(cause, TimeoutError) else str(cause)[:300]
            logger.warning("%s: %s", what, reason, extra=extra)
            return
    logger.warning(what, extra=extra, exc_info=exc)
