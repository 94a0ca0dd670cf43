"""The `gemini` provider through the real `google-genai` SDK against a local fake Gemini API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from google.genai import types

from models import ChatMessage, Sender
from server.ai.base import PromptMessage, ProviderError, TextDelta, ToolCall, ToolSpec
from server.ai.gemini import GeminiLLM
from server.ai.gemini.llm import CallOrigin, to_gemini_contents, to_gemini_tools
from server.ai.prompts import WELFARE_CHAT_SYSTEM_PROMPT
from server.keys import CHAT
from server.welfare import TOOL_DESCRIPTION, TOOL_NAME, TOOL_PARAMETERS
from tests.conftest import LiveServer, make_settings, serve
from tests.support.fakes.gemini_server import THOUGHT_SIGNATURE, FakeGemini, running_fake_gemini
from tests.support.sio import joined_chat_client

QUESTION = "노인 복지 서비스 알려줘"


@pytest.fixture
async def fake_gemini() -> AsyncIterator[FakeGemini]:
    async with running_fake_gemini() as fake:
        yield fake


@pytest.fixture
async def gemini_server(sqlite_url: str, fake_gemini: FakeGemini) -> AsyncIterator[LiveServer]:
    settings = make_settings(
        sqlite_url,
        ai_provider="gemini",
        gemini_api_key="test-key",
        gemini_base_url=fake_gemini.url,
        gemini_model="gemini-2.0-flash",
        ai_timeout_seconds=2,
    )
    async with serve(settings) as live:
        yield live


async def test_welfare_question_round_trips_through_gemini(
    gemini_server: LiveServer, fake_gemini: FakeGemini
) -> None:
    c, session_id = await joined_chat_client(gemini_server.url)
    store = gemini_server.app[CHAT].store
    for i in range(30):
        await store.add(session_id, Sender.USER if i % 2 == 0 else Sender.ASSISTANT, f"older {i}")
    try:
        await c.emit("send-message", {"sessionId": session_id, "message": QUESTION})
        assert (await c.next("message-sent"))["content"] == QUESTION
        reply = (await c.next("ai-message"))["content"]
        assert reply.startswith("검색 결과입니다.\n\n1. ")
        assert "\n    - 담당: " in reply and "\n    - 연락처: " in reply
        assert "".join(ch["content"] for ch in c.of("ai-message-chunk")) == reply
        assert len(c.of("ai-message-chunk")) > 1

        stored = await ChatMessage.filter(session_id=session_id).order_by("created_at")
        assert [(m.sender, m.content) for m in stored[-2:]] == [
            ("user", QUESTION),
            ("assistant", reply),
        ]
        arguments = json.dumps({"query": QUESTION}, ensure_ascii=False)
        assert stored[-1].metadata is not None
        assert stored[-1].metadata["tools"] == [{"name": TOOL_NAME, "arguments": arguments}]

        first, second = fake_gemini.requests
        for request in (first, second):
            assert request.path == "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
            assert request.headers["x-goog-api-key"] == "test-key"
        body = first.body
        assert body["systemInstruction"]["parts"] == [{"text": WELFARE_CHAT_SYSTEM_PROMPT}]
        [declaration] = body["tools"][0]["functionDeclarations"]
        assert declaration["name"] == TOOL_NAME
        assert declaration["description"] == TOOL_DESCRIPTION
        assert declaration["parameters"]["required"] == ["query"]
        assert set(declaration["parameters"]["properties"]) == {
            "query",
            "region",
            "target",
            "limit",
        }
        # the last 20 messages, less the model turn that would open the conversation
        window = [(m.sender, m.content) for m in stored[:-1]][-20:]
        assert window[0][0] == "assistant"
        roles = {"user": "user", "assistant": "model"}
        expected = [{"role": roles[sender], "parts": [{"text": text}]} for sender, text in window]
        assert body["contents"] == expected[1:]
        assert body["contents"][-1] == {"role": "user", "parts": [{"text": QUESTION}]}

        call, response = second.body["contents"][-2:]
        assert second.body["contents"][:-2] == body["contents"]
        assert call == {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": TOOL_NAME, "args": {"query": QUESTION}},
                    "thoughtSignature": THOUGHT_SIGNATURE,
                }
            ],
        }
        assert response["role"] == "user"
        [part] = response["parts"]
        assert part["functionResponse"]["name"] == TOOL_NAME
        services = part["functionResponse"]["response"]["result"]
        assert services and f"1. {services[0]['name']}\n" in reply
    finally:
        await c.close()


@pytest.mark.parametrize("failure", ["http_500", "hang"])
async def test_provider_failure_is_reported_and_user_message_kept(
    gemini_server: LiveServer, fake_gemini: FakeGemini, failure: str
) -> None:
    c, session_id = await joined_chat_client(gemini_server.url)
    try:
        if failure == "hang":
            fake_gemini.hang = True
        else:
            fake_gemini.fail_status = 500
        await c.emit("send-message", {"sessionId": session_id, "message": "노인 일자리"})
        assert (await c.next("message-sent"))["content"] == "노인 일자리"
        assert (await c.next("error", timeout=5)) == {"message": "AI 응답 생성에 실패했습니다"}
        assert len(fake_gemini.requests) == 1  # the SDK did not retry on its own
        stored = (
            await ChatMessage.filter(session_id=session_id)
            .order_by("created_at")
            .values_list("sender", "content")
        )
        assert stored[-1] == ("user", "노인 일자리")
        # the server keeps serving once the model is back
        fake_gemini.hang = False
        fake_gemini.fail_status = None
        await c.emit("send-message", {"sessionId": session_id, "message": "청년 월세"})
        assert (await c.next("ai-message", timeout=5))["content"].startswith("검색 결과입니다.")
        # the unanswered question and the new one share the last user turn
        last_user_turn = fake_gemini.requests[-2].body["contents"][-1]
        assert last_user_turn == {
            "role": "user",
            "parts": [{"text": "노인 일자리"}, {"text": "청년 월세"}],
        }
    finally:
        await c.close()


def test_messages_map_to_gemini_contents() -> None:
    search = ToolCall("call_7", TOOL_NAME, '{"query": "노인", "limit": 2}')
    lookup = ToolCall("gemini-id-1", "lookup", "{}")
    origins = {"gemini-id-1": CallOrigin("gemini-id-1", b"signature")}
    messages = [
        PromptMessage("system", "first rule"),
        PromptMessage("assistant", "안녕하세요!"),  # a greeting can't open a Gemini conversation
        PromptMessage("user", "안녕"),
        PromptMessage("user", "노인 복지"),
        PromptMessage("assistant", "찾아볼게요.", tool_calls=(search, lookup)),
        PromptMessage("tool", '[{"name": "효행장려금"}]', tool_call_id="call_7"),
        PromptMessage("tool", "not json", tool_call_id="gemini-id-1"),
        PromptMessage("system", "second rule"),
        PromptMessage("assistant", ""),  # nothing to send
        PromptMessage("user", "고마워"),
    ]
    system, contents = to_gemini_contents(messages, origins)
    assert system == "first rule\n\nsecond rule"
    dumped = [c.model_dump(mode="json", exclude_none=True, by_alias=True) for c in contents]
    assert dumped == [
        {"role": "user", "parts": [{"text": "안녕"}, {"text": "노인 복지"}]},
        {
            "role": "model",
            "parts": [
                {"text": "찾아볼게요."},
                {"functionCall": {"name": TOOL_NAME, "args": {"query": "노인", "limit": 2}}},
                {
                    "functionCall": {"id": "gemini-id-1", "name": "lookup", "args": {}},
                    "thoughtSignature": "c2lnbmF0dXJl",
                },
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": TOOL_NAME,
                        "response": {"result": [{"name": "효행장려금"}]},
                    }
                },
                {
                    "functionResponse": {
                        "id": "gemini-id-1",
                        "name": "lookup",
                        "response": {"result": "not json"},
                    }
                },
                {"text": "고마워"},
            ],
        },
    ]
    hello = types.Content(role="user", parts=[types.Part(text="hi")])
    assert to_gemini_contents([PromptMessage("user", "hi")]) == (None, [hello])
    orphan = [PromptMessage("user", "hi"), PromptMessage("tool", "{}", tool_call_id="nope")]
    with pytest.raises(ProviderError):
        to_gemini_contents(orphan)


def test_tool_specs_map_to_function_declarations() -> None:
    [tool] = to_gemini_tools([ToolSpec(TOOL_NAME, TOOL_DESCRIPTION, TOOL_PARAMETERS)])
    [declaration] = tool.function_declarations or []
    assert declaration.name == TOOL_NAME and declaration.description == TOOL_DESCRIPTION
    assert declaration.parameters is not None and declaration.parameters.required == ["query"]
    # a JSON Schema that Gemini's Schema type can't hold is passed through as JSON Schema
    exotic = {"type": "object", "$defs": {}, "properties": {"q": {"type": "string"}}}
    [tool] = to_gemini_tools([ToolSpec("exotic", "d", exotic)])
    [declaration] = tool.function_declarations or []
    assert declaration.parameters is None and declaration.parameters_json_schema == exotic
    assert to_gemini_tools([]) == []


async def test_plain_answer_streams_in_chunks(fake_gemini: FakeGemini) -> None:
    llm = GeminiLLM(api_key="k", model="gemini-2.0-flash", base_url=fake_gemini.url, timeout=2)
    try:
        events = [e async for e in llm.stream([PromptMessage("user", "안녕하세요 반가워요")], [])]
    finally:
        await llm.aclose()
    assert all(isinstance(e, TextDelta) for e in events) and len(events) > 1
    assert (
        "".join(e.text for e in events if isinstance(e, TextDelta)) == "답변: 안녕하세요 반가워요"
    )
    assert "tools" not in fake_gemini.requests[0].body


async def test_unreachable_endpoint_is_a_provider_error() -> None:
    llm = GeminiLLM(api_key="k", model="gemini-2.0-flash", base_url="http://127.0.0.1:9", timeout=2)
    try:
        with pytest.raises(ProviderError):
            async for _ in llm.stream([PromptMessage("user", "hi")], []):
                pass
    finally:
        await llm.aclose()
