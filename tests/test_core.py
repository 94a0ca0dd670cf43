"""The conversation core without a socket: history order, lanes, rate limit, context."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from tortoise.context import tortoise_test_context

from models import MODEL_MODULES, Sender
from server.ai.base import LLMEvent, PromptMessage, TextDelta, ToolSpec
from server.chat.history import HistoryStore
from server.chat.service import ChatService
from server.chat.sessions import ChatSessionService
from server.conversation.lanes import Lanes
from server.conversation.ratelimit import RateLimiter
from server.conversation.tools import Toolbox
from server.safety.detector import default_detector
from server.safety.layer import SafetyLayer


@pytest.fixture
async def orm() -> AsyncIterator[None]:
    async with tortoise_test_context(MODEL_MODULES, connection_label="sqlite"):
        yield


async def test_history_keeps_store_order_within_one_millisecond(orm: None) -> None:
    store = HistoryStore()
    for i in range(200):
        await store.add("s", Sender.USER if i % 2 == 0 else Sender.ASSISTANT, f"m{i}")
    recent = await store.recent("s", 50)
    assert [m.content for m in recent] == [f"m{i}" for i in range(150, 200)]
    stamps = [m.created_at for m in recent]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


async def test_lanes_run_in_call_order_and_survive_cancellation() -> None:
    lanes = Lanes()
    order: list[int] = []
    gate = asyncio.Event()

    async def work(n: int, wait: bool = False) -> None:
        async with lanes.lane("k"):
            if wait:
                await gate.wait()
            order.append(n)

    first = asyncio.create_task(work(1, wait=True))
    second = asyncio.create_task(work(2))
    third = asyncio.create_task(work(3))
    await asyncio.sleep(0.01)
    second.cancel()  # cancelled while queued: the third must still wait for the first
    await asyncio.sleep(0.01)
    assert order == []
    gate.set()
    await asyncio.gather(first, third)
    await asyncio.gather(second, return_exceptions=True)
    assert order == [1, 3]
    assert not lanes.busy("k")


async def test_rate_limiter_counts_a_sliding_window() -> None:
    limiter = RateLimiter(limit=2, window_seconds=0.05)
    assert await limiter.allow("a") and await limiter.allow("a")
    assert not await limiter.allow("a")
    assert await limiter.allow("b")
    await asyncio.sleep(0.06)
    assert await limiter.allow("a")


class RecordingLLM:
    name = "recording"

    def __init__(self) -> None:
        self.prompts: list[list[PromptMessage]] = []

    async def stream(
        self, messages: Sequence[PromptMessage], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[LLMEvent]:
        self.prompts.append(list(messages))
        await asyncio.sleep(0.01)
        yield TextDelta(f"answer to {messages[-1].content}")

    async def aclose(self) -> None:
        return None


async def test_context_is_the_last_n_messages_ending_with_the_question(orm: None) -> None:
    llm = RecordingLLM()
    chat = ChatService(
        sessions=ChatSessionService(timeout_seconds=60),
        history=HistoryStore(),
        llm=llm,
        toolbox=Toolbox([]),
        limiter=RateLimiter(100),
        system_prompt="SYSTEM",
        max_message_length=2000,
        context_messages=5,
        ai_timeout_seconds=5,
        safety=SafetyLayer(default_detector()),
    )
    joined = await chat.join("u", None)
    sid = joined.session.session_id
    questions = [(await chat.accept(sid, f"q{i}")).message for i in range(4)]
    replies = await asyncio.gather(*(chat.reply(q) for q in questions))
    assert [r.content for r in replies] == [f"answer to q{i}" for i in range(4)]
    assert [r.metadata for r in replies] == [{"replyTo": q.id} for q in questions]
    last = [(m.role, m.content) for m in llm.prompts[-1]]
    assert last == [
        ("system", "SYSTEM"),
        ("user", "q1"),
        ("assistant", "answer to q1"),
        ("user", "q2"),
        ("assistant", "answer to q2"),
        ("user", "q3"),
    ]
    first = [m.content for m in llm.prompts[0]]
    assert first[-1] == "q0" and "q1" not in first
