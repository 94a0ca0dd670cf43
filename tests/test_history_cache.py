"""The recent-messages cache (`server/chat/history.py`) never hides what the database holds:
a message another instance (or a call, or the NestJS server) stored in the session is in
the next turn's context, and a context still ends with the last 20 messages. Also the
batching of `server/chat/batch.py`: many statements at once, each caller its own result."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from tortoise.context import tortoise_test_context
from tortoise.exceptions import IntegrityError

from models import MODEL_MODULES, ChatMessage, ChatSession, Sender
from server.calls.conversation import VoiceConversation
from server.chat import clock
from server.chat.batch import Batcher
from server.chat.history import HistoryStore
from server.chat.service import ChatService
from server.chat.sessions import ChatSessionService
from server.chat.stored import StoredMessage
from server.conversation.ratelimit import RateLimiter
from server.conversation.tools import Toolbox
from server.safety.detector import default_detector
from server.safety.layer import SafetyLayer
from tests.test_core import RecordingLLM


@pytest.fixture
async def orm() -> AsyncIterator[None]:
    async with tortoise_test_context(MODEL_MODULES, connection_label="sqlite"):
        yield


def chat_service(llm: RecordingLLM, history: HistoryStore | None = None) -> ChatService:
    return ChatService(
        sessions=ChatSessionService(timeout_seconds=60),
        history=history or HistoryStore(),
        llm=llm,
        toolbox=Toolbox([]),
        limiter=RateLimiter(1000),
        system_prompt="SYSTEM",
        max_message_length=2000,
        context_messages=20,
        ai_timeout_seconds=5,
        safety=SafetyLayer(default_detector()),
    )


async def turn(chat: ChatService, session_id: str, text: str) -> None:
    await chat.reply((await chat.accept(session_id, text)).message)


async def test_a_message_stored_elsewhere_is_in_the_next_context(orm: None) -> None:
    llm = RecordingLLM()
    chat = chat_service(llm)
    sid = (await chat.join("u", None)).session.session_id
    await turn(chat, sid, "q0")
    assert len(chat.store.cache) == 1  # the session's context is cached now
    # another instance stores a message in the same session, behind this one's back
    stamp = clock.next_timestamp()
    await ChatMessage.create(
        session_id=sid,
        sender="user",
        message_type="TEXT",
        content="from elsewhere",
        created_at=stamp,
        updated_at=stamp,
    )
    await turn(chat, sid, "q1")
    contents = [m.content for m in llm.prompts[-1]]
    assert contents[-2:] == ["from elsewhere", "q1"]
    assert contents[-4:-2] == ["q0", "answer to q0"]
    # and a second store writing to the session (a call's transcript) is seen the same way
    other = HistoryStore()
    await other.add(sid, Sender.ASSISTANT, "from a call")
    await turn(chat, sid, "q2")
    assert [m.content for m in llm.prompts[-1]][-3:] == ["answer to q1", "from a call", "q2"]


async def test_the_cached_context_is_the_last_twenty_messages(orm: None) -> None:
    llm = RecordingLLM()
    chat = chat_service(llm)
    sid = (await chat.join("u", None)).session.session_id
    for i in range(15):
        await turn(chat, sid, f"q{i}")
    rows = await ChatMessage.filter(session_id=sid).order_by("-created_at").limit(20)
    from_db = [r.content for r in reversed(rows)]
    assert from_db[-1] == "answer to q14"
    await turn(chat, sid, "q15")
    context = [m.content for m in llm.prompts[-1]]
    assert context[0] == "SYSTEM"
    # the last 19 stored before the question, then the question: 20 in all
    assert context[1:] == [*from_db[1:], "q15"]


async def test_an_ended_session_refuses_the_message_and_stores_nothing(orm: None) -> None:
    chat = chat_service(RecordingLLM())
    sid = (await chat.join("u", None)).session.session_id
    await ChatSession.filter(session_id=sid).update(is_active=False)
    with pytest.raises(Exception, match="세션을 찾을 수 없습니다"):
        await chat.accept(sid, "too late")
    assert await ChatMessage.filter(session_id=sid, sender="user").count() == 0


async def test_joins_at_once_are_batched_and_a_duplicate_fails_alone(orm: None) -> None:
    sessions = ChatSessionService(timeout_seconds=60)
    await sessions.join("u0", "taken")
    results = await asyncio.gather(
        *(sessions._create(f"u{i}", f"s{i}") for i in range(30)),
        sessions._create("u-dup", "taken"),
        return_exceptions=True,
    )
    assert all(not isinstance(r, BaseException) for r in results[:30])
    assert isinstance(results[30], IntegrityError)
    assert await ChatSession.all().count() == 31


async def test_batcher_groups_what_queues_and_isolates_a_failure() -> None:
    gate = asyncio.Semaphore(1)
    batches: list[list[int]] = []

    async def run(items: list[int]) -> list[int]:
        batches.append(list(items))
        await asyncio.sleep(0.01)
        if 13 in items:
            raise ValueError("thirteen")
        return [i * 10 for i in items]

    batcher: Batcher[int, int] = Batcher(run, gate)  # type: ignore[arg-type]
    results = await asyncio.gather(*(batcher.submit(i) for i in range(20)), return_exceptions=True)
    assert results[:13] == [i * 10 for i in range(13)]
    assert isinstance(results[13], ValueError)
    assert results[14:] == [i * 10 for i in range(14, 20)]
    assert batches[0] == [0]  # the first went at once, alone
    assert batches[1] == list(range(1, 20))  # the rest queued up while it ran: one batch
    assert [13] in batches  # ... which failed, so each went on its own


class SlowStore(HistoryStore):
    """Its INSERTs take `delay` seconds (a busy database); or fail."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        super().__init__()
        self.delay, self.fail = delay, fail

    async def store(self, message: StoredMessage) -> StoredMessage:
        await asyncio.sleep(self.delay)
        if self.fail and message.sender == "user":
            raise OSError("database gone")
        return await super().store(message)


def voice_conversation(llm: RecordingLLM, history: HistoryStore) -> VoiceConversation:
    return VoiceConversation(
        llm=llm,
        toolbox=Toolbox([]),
        history=history,
        context_messages=20,
        ai_timeout_seconds=5,
        safety=SafetyLayer(default_detector()),
    )


async def test_a_callers_words_are_stored_before_any_answer_is_spoken(orm: None) -> None:
    """The INSERT runs while the model starts; the first sentence still waits for it."""
    llm = RecordingLLM()
    calls = voice_conversation(llm, SlowStore(delay=0.3))
    stored_when_spoken: list[int] = []

    async def on_sentence(sentence: str) -> None:
        stored_when_spoken.append(await ChatMessage.filter(session_id="s", sender="user").count())

    await calls.greet("s", "call")
    answer = await calls.respond("s", "call", "노인 복지 서비스 알려줘", on_sentence)
    assert answer == "answer to 노인 복지 서비스 알려줘"  # the words were in the context
    assert stored_when_spoken == [1]
    # the next turn's context: the first exchange, from the checked cache
    await calls.respond("s", "call", "고마워요", on_sentence)
    contents = [m.content for m in llm.prompts[-1]]
    assert contents[1:] == [
        "안녕하세요! AI 상담원입니다. 무엇을 도와드릴까요?",
        "노인 복지 서비스 알려줘",
        "answer to 노인 복지 서비스 알려줘",
        "고마워요",
    ]


async def test_words_that_cannot_be_stored_are_not_answered(orm: None) -> None:
    calls = voice_conversation(RecordingLLM(), SlowStore(fail=True))
    spoken: list[str] = []

    async def on_sentence(sentence: str) -> None:
        spoken.append(sentence)

    with pytest.raises(OSError, match="database gone"):
        await calls.respond("s", "call", "노인 복지 서비스 알려줘", on_sentence)
    assert spoken == []
    assert await ChatMessage.filter(session_id="s").count() == 0
