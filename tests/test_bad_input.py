"""Every `/chat` event with malformed payloads gets `error`, and the server keeps serving."""

from __future__ import annotations

from typing import Any

from models import ChatMessage
from tests.conftest import LiveServer
from tests.support.sio import RecordingClient

EVENTS = ["join-chat", "send-message", "leave-chat", "get-history", "typing"]
NOT_OBJECTS: list[Any] = [None, "text", 42, 1.5, True, [], ["a"]]
LONG_ID = "x" * 256

# (event, payload, expected message); "S" is replaced by the joined session id
CASES: list[tuple[str, dict[str, Any], str]] = [
    ("join-chat", {}, "잘못된 요청입니다: userId"),
    ("join-chat", {"userId": 42}, "잘못된 요청입니다: userId"),
    ("join-chat", {"userId": None}, "잘못된 요청입니다: userId"),
    ("join-chat", {"userId": ""}, "잘못된 요청입니다: userId"),
    ("join-chat", {"userId": LONG_ID}, "잘못된 요청입니다: userId"),
    ("join-chat", {"userId": ["u"]}, "잘못된 요청입니다: userId"),
    ("join-chat", {"userId": "u", "sessionId": 5}, "잘못된 요청입니다: sessionId"),
    ("join-chat", {"userId": "u", "sessionId": ""}, "잘못된 요청입니다: sessionId"),
    ("join-chat", {"userId": "u", "sessionId": LONG_ID}, "잘못된 요청입니다: sessionId"),
    ("join-chat", {"userId": "u", "sessionId": {"$ne": 1}}, "잘못된 요청입니다: sessionId"),
    ("join-chat", {"userId": "u", "stream": "yes"}, "잘못된 요청입니다: stream"),
    ("send-message", {}, "잘못된 요청입니다: sessionId"),
    ("send-message", {"sessionId": "S"}, "잘못된 요청입니다: message"),
    ("send-message", {"sessionId": 1, "message": "x"}, "잘못된 요청입니다: sessionId"),
    ("send-message", {"sessionId": "S", "message": 5}, "잘못된 요청입니다: message"),
    ("send-message", {"sessionId": "S", "message": None}, "잘못된 요청입니다: message"),
    ("send-message", {"sessionId": "S", "message": {"a": 1}}, "잘못된 요청입니다: message"),
    ("send-message", {"sessionId": "S", "message": ""}, "메시지가 비어 있습니다"),
    ("send-message", {"sessionId": "S", "message": " \n\t "}, "메시지가 비어 있습니다"),
    (
        "send-message",
        {"sessionId": "S", "message": "가" * 2001},
        "메시지가 너무 깁니다 (최대 2000자)",
    ),
    ("send-message", {"sessionId": "nope", "message": "x"}, "세션을 찾을 수 없습니다"),
    ("leave-chat", {}, "잘못된 요청입니다: sessionId"),
    ("leave-chat", {"sessionId": []}, "잘못된 요청입니다: sessionId"),
    ("get-history", {}, "잘못된 요청입니다: sessionId"),
    ("get-history", {"sessionId": "S", "limit": "10"}, "잘못된 요청입니다: limit"),
    ("get-history", {"sessionId": "S", "limit": 0}, "잘못된 요청입니다: limit"),
    ("get-history", {"sessionId": "S", "limit": -5}, "잘못된 요청입니다: limit"),
    ("get-history", {"sessionId": "S", "limit": 1.5}, "잘못된 요청입니다: limit"),
    ("get-history", {"sessionId": "S", "limit": True}, "잘못된 요청입니다: limit"),
    ("get-history", {"sessionId": "nope"}, "세션을 찾을 수 없습니다"),
    ("typing", {"sessionId": "S"}, "잘못된 요청입니다: isTyping"),
    ("typing", {"sessionId": "S", "isTyping": "true"}, "잘못된 요청입니다: isTyping"),
    ("typing", {"sessionId": "S", "isTyping": 1}, "잘못된 요청입니다: isTyping"),
    ("typing", {"sessionId": "nope", "isTyping": True}, "세션을 찾을 수 없습니다"),
]


async def test_malformed_payloads_get_errors_and_service_continues(server: LiveServer) -> None:
    c = RecordingClient()
    await c.connect(server.url)
    try:
        session_id = (await c.call("join-chat", {"userId": "u"}))["sessionId"]
        await c.next("ai-message")  # the greeting
        expected: list[str] = []
        for event in EVENTS:
            for payload in NOT_OBJECTS:
                reply = await c.call(event, payload)
                assert reply == {"error": {"message": "잘못된 요청입니다: payload"}}, (
                    event,
                    payload,
                )
                expected.append("잘못된 요청입니다: payload")
            await c.sio.emit(event, namespace="/chat")  # no payload at all
            expected.append("잘못된 요청입니다: payload")
        for event, payload, message in CASES:
            if payload.get("sessionId") == "S":
                payload = {**payload, "sessionId": session_id}
            reply = await c.call(event, payload)
            assert reply == {"error": {"message": message}}, (event, payload)
            expected.append(message)
        errors = [(await c.next("error"))["message"] for _ in expected]
        assert errors == expected
        # nothing malformed was stored: only the greeting
        assert await ChatMessage.filter(session_id=session_id).count() == 1
        # and a valid request is still answered
        await c.emit("send-message", {"sessionId": session_id, "message": "노인 일자리"})
        assert (await c.next("message-sent"))["content"] == "노인 일자리"
        assert "1. " in (await c.next("ai-message"))["content"]
    finally:
        await c.close()


async def test_unknown_event_is_ignored(server: LiveServer) -> None:
    c = RecordingClient()
    await c.connect(server.url)
    try:
        await c.emit("no-such-event", {"x": 1})
        await c.emit("__class__", {"x": 1})
        joined = await c.call("join-chat", {"userId": "u"})
        assert "sessionId" in joined and not c.of("error")
    finally:
        await c.close()
