"""The `openai` provider through the real SDK against a local fake of the OpenAI API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from models import ChatMessage, Sender
from server.ai.base import PromptMessage, ProviderError, TextDelta
from server.ai.openai import OpenAILLM
from server.ai.openai.llm import read_chunk, sse_data
from server.keys import CHAT
from tests.conftest import LiveServer, fake_openai_settings, serve
from tests.support.fakes.openai_server import FakeOpenAI
from tests.support.sio import joined_chat_client


@pytest.fixture
async def openai_server(sqlite_url: str, fake_openai: FakeOpenAI) -> AsyncIterator[LiveServer]:
    settings = fake_openai_settings(
        sqlite_url, fake_openai, openai_model="gpt-4o", ai_timeout_seconds=2
    )
    async with serve(settings) as live:
        yield live


async def test_tool_call_round_trip_reaches_the_client(
    openai_server: LiveServer, fake_openai: FakeOpenAI
) -> None:
    c, session_id = await joined_chat_client(openai_server.url)
    store = openai_server.app[CHAT].store
    for i in range(30):
        await store.add(session_id, Sender.USER if i % 2 else Sender.ASSISTANT, f"older {i}")
    try:
        await c.emit(
            "send-message", {"sessionId": session_id, "message": "노인 복지 서비스 알려줘"}
        )
        reply = (await c.next("ai-message"))["content"]
        assert reply.startswith("검색 결과입니다.")
        assert "1. " in reply and "    - 담당: " in reply
        assert "".join(ch["content"] for ch in c.of("ai-message-chunk")) == reply

        first, second = fake_openai.requests
        assert first["stream"] is True and first["model"] == "gpt-4o"
        assert [t["function"]["name"] for t in first["tools"]] == ["search_welfare_services"]
        assert first["tools"][0]["function"]["parameters"]["required"] == ["query"]
        assert first["messages"][0]["role"] == "system"
        stored = await ChatMessage.filter(session_id=session_id).order_by("created_at")
        last_20 = [m.content for m in stored if m.content != reply][-20:]
        assert [m["content"] for m in first["messages"][1:]] == last_20
        assert first["messages"][-1] == {"role": "user", "content": "노인 복지 서비스 알려줘"}
        # the second request carries the tool call and its result
        assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == (
            "search_welfare_services"
        )
        assert second["messages"][-1]["role"] == "tool"
        assert second["messages"][-1]["tool_call_id"] == "call_fake1"
        assert stored[-1].sender == "assistant" and stored[-1].content == reply
        assert stored[-2].content == "노인 복지 서비스 알려줘"
    finally:
        await c.close()


async def test_second_turn_sees_the_first_in_context(
    openai_server: LiveServer, fake_openai: FakeOpenAI
) -> None:
    c, session_id = await joined_chat_client(openai_server.url)
    try:
        await c.emit("send-message", {"sessionId": session_id, "message": "장애인 지원"})
        await c.emit("send-message", {"sessionId": session_id, "message": "임산부 지원"})
        first = (await c.next("ai-message"))["content"]
        await c.next("ai-message")
        third_request = fake_openai.requests[2]  # turn 2's first call
        contents = [m["content"] for m in third_request["messages"]]
        assert contents[-3:] == ["장애인 지원", first, "임산부 지원"]
        turn1_first_call = fake_openai.requests[0]
        assert "임산부 지원" not in [m["content"] for m in turn1_first_call["messages"]]
    finally:
        await c.close()


@pytest.mark.parametrize("failure", ["http_500", "hang", "stream_error", "malformed_chunk"])
async def test_provider_failure_is_reported_and_user_message_kept(
    openai_server: LiveServer, fake_openai: FakeOpenAI, failure: str
) -> None:
    c, session_id = await joined_chat_client(openai_server.url)
    try:
        if failure == "http_500":
            fake_openai.fail_status = 500
        else:
            setattr(fake_openai, failure, True)
        await c.emit("send-message", {"sessionId": session_id, "message": "노인 일자리"})
        assert (await c.next("message-sent"))["content"] == "노인 일자리"
        assert (await c.next("error", timeout=5)) == {"message": "AI 응답 생성에 실패했습니다"}
        senders = (
            await ChatMessage.filter(session_id=session_id)
            .order_by("created_at")
            .values_list("sender", "content")
        )
        assert senders[-1] == ("user", "노인 일자리")
        # the server keeps serving once the model is back
        fake_openai.hang = fake_openai.stream_error = fake_openai.malformed_chunk = False
        fake_openai.fail_status = None
        await c.emit("send-message", {"sessionId": session_id, "message": "청년 월세"})
        assert (await c.next("ai-message", timeout=5))["content"].startswith("검색 결과입니다.")
        assert fake_openai.requests[-2]["messages"][-1]["content"] == "청년 월세"
    finally:
        await c.close()


async def _lines(*lines: str) -> AsyncIterator[bytes]:
    for line in lines:
        yield line.encode() + b"\r\n"


async def test_sse_data_follows_the_event_stream_format() -> None:
    lines = _lines(
        ": a comment",
        "",
        "event: message",
        'data: {"a":',
        "data:1}",
        "",
        "id: 7",
        "data: [DONE]",
    )
    assert [d async for d in sse_data(lines)] == [b'{"a":\n1}', b"[DONE]"]


@pytest.mark.parametrize(
    "data",
    ["{", "[]", '{"choices": "x"}', '{"choices": [{"delta": 3}]}', '{"error": {"message": "x"}}'],
)
def test_a_chunk_that_is_not_one_is_a_provider_error(data: str) -> None:
    with pytest.raises(ProviderError):
        read_chunk(data.encode())


def test_a_chunk_gives_its_text_and_tool_call_deltas() -> None:
    call = {"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{}"}}
    chunk = {"choices": [{"index": 0, "delta": {"content": "안녕", "tool_calls": [call]}}]}
    assert read_chunk(json.dumps(chunk).encode()) == ("안녕", [call])
    assert read_chunk(b'{"choices": []}') == ("", [])


async def test_an_error_status_names_the_api_message(fake_openai: FakeOpenAI) -> None:
    llm = OpenAILLM(api_key="sk-test", model="gpt-4o", base_url=fake_openai.url + "/", timeout=2)
    fake_openai.fail_status = 429
    try:
        with pytest.raises(ProviderError, match=r"^openai: HTTP 429: fake failure$"):
            async for _ in llm.stream([PromptMessage(role="user", content="안녕")], []):
                pass
        fake_openai.fail_status = None
        events = [e async for e in llm.stream([PromptMessage(role="user", content="안녕")], [])]
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "답변: 안녕"
        assert fake_openai.requests[-1] == {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "안녕"}],
            "stream": True,
        }
    finally:
        await llm.aclose()
