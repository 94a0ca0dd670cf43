"""CONTRACT §1 `/chat` over a real socket, on SQLite and on MySQL."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import pytest

from models import ChatMessage, ChatSession
from server.texts import GREETING, JOINED
from tests.conftest import LiveServer
from tests.support.sio import RecordingClient

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
WELFARE_QUESTION = "노인 복지 서비스 알려줘"


@pytest.fixture
async def client(any_server: LiveServer) -> AsyncIterator[RecordingClient]:
    c = RecordingClient()
    await c.connect(any_server.url)
    yield c
    await c.close()


async def join(c: RecordingClient, user: str = "user-1", **extra: object) -> str:
    await c.emit("join-chat", {"userId": user, **extra})
    joined = await c.next("chat-joined")
    await c.next("chat-history")
    return str(joined["sessionId"])


async def test_join_new_session_greets_after_history(client: RecordingClient) -> None:
    ack = await client.call("join-chat", {"userId": "user-1"})
    joined = await client.next("chat-joined")
    assert ack == joined
    assert joined["userId"] == "user-1"
    assert joined["message"] == JOINED
    assert str(uuid.UUID(joined["sessionId"], version=4)) == joined["sessionId"]
    assert (await client.next("chat-history")) == {"messages": []}
    greeting = await client.next("ai-message")
    assert greeting["content"] == GREETING
    assert isinstance(greeting["timestamp"], int)
    assert client.names()[:3] == ["chat-joined", "chat-history", "ai-message"]
    session = await ChatSession.get(session_id=joined["sessionId"])
    assert session.user_id == "user-1" and session.is_active
    stored = await ChatMessage.filter(session_id=joined["sessionId"]).values_list(
        "sender", "content"
    )
    assert stored == [("assistant", GREETING)]


async def test_send_message_is_stored_echoed_then_answered(client: RecordingClient) -> None:
    session_id = await join(client)
    await client.next("ai-message")  # greeting
    ack = await client.call("send-message", {"sessionId": session_id, "message": WELFARE_QUESTION})
    sent = await client.next("message-sent")
    assert ack == sent
    assert sent["content"] == WELFARE_QUESTION and isinstance(sent["timestamp"], int)
    reply = await client.next("ai-message")
    names = client.names()
    assert names.index("message-sent") < len(names) - 1 - names[::-1].index("ai-message")
    assert re.search(r"^1\. .+\n    - 담당: .+\n    - 연락처: .+", reply["content"], re.M)
    rows = await ChatMessage.filter(session_id=session_id).order_by("created_at")
    assert [(r.sender, r.message_type) for r in rows] == [
        ("assistant", "TEXT"),
        ("user", "TEXT"),
        ("assistant", "TEXT"),
    ]
    assert rows[1].content == WELFARE_QUESTION and rows[2].content == reply["content"]
    assert rows[2].metadata and rows[2].metadata["tools"][0]["name"] == "search_welfare_services"


async def test_rejoin_replays_history_without_greeting(any_server: LiveServer) -> None:
    first, second = RecordingClient(), RecordingClient()
    await first.connect(any_server.url)
    await second.connect(any_server.url, transport="polling")
    try:
        session_id = await join(first)
        await first.next("ai-message")
        await first.call("send-message", {"sessionId": session_id, "message": "안녕하세요"})
        await first.next("message-sent")
        await first.next("ai-message")
        await second.emit("join-chat", {"userId": "user-1", "sessionId": session_id})
        joined = await second.next("chat-joined")
        assert joined["sessionId"] == session_id
        history = (await second.next("chat-history"))["messages"]
        assert [m["sender"] for m in history] == ["assistant", "user", "assistant"]
        assert history[0]["content"] == GREETING and history[1]["content"] == "안녕하세요"
        assert all(ISO_MS.match(m["createdAt"]) for m in history)
        assert all(set(m) == {"id", "sender", "content", "createdAt"} for m in history)
        assert await second.nothing("ai-message")
        # both sockets are in the room: each sees the other's turn
        await second.call("send-message", {"sessionId": session_id, "message": "고마워요"})
        assert (await first.next("message-sent"))["content"] == "고마워요"
        assert (await first.next("ai-message"))["content"] == (await second.next("ai-message"))[
            "content"
        ]
    finally:
        await first.close()
        await second.close()


async def test_unknown_session_id_is_created_under_that_id(client: RecordingClient) -> None:
    wanted = f"custom-{uuid.uuid4().hex}"
    await client.emit("join-chat", {"userId": "user-9", "sessionId": wanted})
    assert (await client.next("chat-joined"))["sessionId"] == wanted
    assert (await client.next("ai-message"))["content"] == GREETING
    assert await ChatSession.filter(session_id=wanted, user_id="user-9").exists()


async def test_another_users_session_is_refused(any_server: LiveServer) -> None:
    owner, intruder = RecordingClient(), RecordingClient()
    await owner.connect(any_server.url)
    await intruder.connect(any_server.url)
    try:
        session_id = await join(owner, "owner")
        reply = await intruder.call("join-chat", {"userId": "intruder", "sessionId": session_id})
        assert reply == {"error": {"message": "세션에 접근할 권한이 없습니다"}}
        assert (await intruder.next("error"))["message"] == "세션에 접근할 권한이 없습니다"
        assert not intruder.of("chat-joined") and not intruder.of("chat-history")
        sent = await intruder.call("send-message", {"sessionId": session_id, "message": "hi"})
        assert sent == {"error": {"message": "세션을 찾을 수 없습니다"}}
    finally:
        await owner.close()
        await intruder.close()


async def test_typing_reaches_the_others_only(any_server: LiveServer) -> None:
    a, b = RecordingClient(), RecordingClient()
    await a.connect(any_server.url)
    await b.connect(any_server.url)
    try:
        session_id = await join(a)
        await b.emit("join-chat", {"userId": "user-1", "sessionId": session_id})
        await b.next("chat-history")
        ack = await a.call("typing", {"sessionId": session_id, "isTyping": True})
        assert ack == {"isTyping": True}
        assert (await b.next("user-typing")) == {"isTyping": True}
        await a.emit("typing", {"sessionId": session_id, "isTyping": False})
        assert (await b.next("user-typing")) == {"isTyping": False}
        assert not a.of("user-typing")
    finally:
        await a.close()
        await b.close()


async def test_leave_then_send_is_refused(client: RecordingClient) -> None:
    session_id = await join(client)
    ack = await client.call("leave-chat", {"sessionId": session_id})
    assert ack == {"sessionId": session_id}
    assert (await client.next("chat-left")) == {"sessionId": session_id}
    await client.emit("send-message", {"sessionId": session_id, "message": "still there?"})
    assert (await client.next("error")) == {"message": "세션을 찾을 수 없습니다"}
    assert not await ChatMessage.filter(session_id=session_id, sender="user").exists()


async def test_get_history_limit_default_and_max(any_server: LiveServer) -> None:
    from server.keys import CHAT

    c = RecordingClient()
    await c.connect(any_server.url)
    try:
        session_id = await join(c)
        store = any_server.app[CHAT].store
        for i in range(60):
            await store.add(session_id, *_user(f"m{i}"))
        full = await c.call("get-history", {"sessionId": session_id})
        assert full == await c.next("chat-history")
        contents = [m["content"] for m in full["messages"]]
        assert len(contents) == 50 and contents[-1] == "m59" and contents[0] == "m10"
        assert (
            len((await c.call("get-history", {"sessionId": session_id, "limit": 5}))["messages"])
            == 5
        )
        over = await c.call("get-history", {"sessionId": session_id, "limit": 500})
        assert len(over["messages"]) == 50
    finally:
        await c.close()


def _user(text: str) -> tuple:  # type: ignore[type-arg]
    from models import Sender

    return (Sender.USER, text)


async def test_stream_opt_in_sends_chunks_that_add_up(any_server: LiveServer) -> None:
    streaming, plain = RecordingClient(), RecordingClient()
    await streaming.connect(any_server.url)
    await plain.connect(any_server.url)
    try:
        session_id = await join(streaming, stream=True)
        await plain.emit("join-chat", {"userId": "user-1", "sessionId": session_id})
        await plain.next("chat-history")
        await streaming.next("ai-message")
        await streaming.emit("send-message", {"sessionId": session_id, "message": WELFARE_QUESTION})
        reply = await streaming.next("ai-message")
        chunks = streaming.of("ai-message-chunk")
        assert len(chunks) > 1
        assert "".join(c["content"] for c in chunks) == reply["content"]
        assert all(isinstance(c["timestamp"], int) for c in chunks)
        assert (await plain.next("ai-message"))["content"] == reply["content"]
        assert not plain.of("ai-message-chunk")
    finally:
        await streaming.close()
        await plain.close()


async def test_turns_of_a_session_are_answered_in_order(client: RecordingClient) -> None:
    session_id = await join(client)
    await client.next("ai-message")
    questions = ["노인 일자리", "장애인 활동 지원", "임산부 지원", "청년 월세"]
    for q in questions:
        await client.emit("send-message", {"sessionId": session_id, "message": q})
    sent = [(await client.next("message-sent"))["content"] for _ in questions]
    replies = [(await client.next("ai-message", timeout=10))["content"] for _ in questions]
    assert sent == questions
    rows = await ChatMessage.filter(session_id=session_id).order_by("created_at")
    stored_replies = [r.content for r in rows if r.sender == "assistant"][1:]
    assert stored_replies == replies
    assert len(set(replies)) == len(replies)
    metadata_queries = [
        r.metadata["tools"][0]["arguments"] for r in rows if r.sender == "assistant" and r.metadata
    ]
    assert [q in m for q, m in zip(questions, metadata_queries, strict=True)] == [True] * 4


async def test_polling_transport_serves_the_same_contract(any_server: LiveServer) -> None:
    c = RecordingClient()
    await c.connect(any_server.url, transport="polling")
    try:
        session_id = await join(c)
        await c.next("ai-message")
        await c.emit("send-message", {"sessionId": session_id, "message": WELFARE_QUESTION})
        assert (await c.next("message-sent"))["content"] == WELFARE_QUESTION
        assert "1. " in (await c.next("ai-message"))["content"]
    finally:
        await c.close()


async def test_events_of_one_connection_run_in_arrival_order(client: RecordingClient) -> None:
    # send-message right after join-chat, without waiting: the join must be handled first
    await client.emit("join-chat", {"userId": "u-order", "sessionId": "order-test"})
    await client.emit("send-message", {"sessionId": "order-test", "message": "바로 보냄"})
    assert (await client.next("message-sent"))["content"] == "바로 보냄"
    assert not client.of("error")


async def test_rate_limit_refuses_without_storing(any_server: LiveServer) -> None:
    from server.keys import CHAT

    any_server.app[CHAT].limiter.limit = 2
    c = RecordingClient()
    await c.connect(any_server.url)
    try:
        session_id = await join(c)
        for text in ("하나", "둘"):
            await c.call("send-message", {"sessionId": session_id, "message": text})
        third = await c.call("send-message", {"sessionId": session_id, "message": "셋"})
        assert third == {"error": {"message": "요청이 너무 많습니다. 잠시 후 다시 시도해 주세요"}}
        # a message is stored before its ack: the refused one would be there by now
        users = await ChatMessage.filter(session_id=session_id, sender="user").values_list(
            "content", flat=True
        )
        assert sorted(users) == sorted(["하나", "둘"])
    finally:
        await c.close()
