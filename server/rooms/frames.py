"""Room frames (CONTRACT §4): `{hd: {event, role, timestamp?}, bd: {text, prompt?}}`.

The frame a client sends is what the log stores and every client of the room receives, so
the room's core and its wire format are the same shape; this module is that shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from server.errors import MESSAGE_EMPTY, ChatError, invalid_field, message_too_long

CHAT_MESSAGE = "chat.message"
LLM_INVOKE = "llm.invoke"
LLM_STREAMING = "llm.streaming"
LLM_RESPONSE = "llm.response"
ERROR = "error"
CLIENT_EVENTS = frozenset({CHAT_MESSAGE, LLM_INVOKE})  # what a client may send

LLM_PARTICIPANT = "llm"
DEFAULT_PARTICIPANT = "user"  # a frame without `hd.role`
MAX_PARTICIPANT_LENGTH = 32  # `room_messages.participant`
FRAME_OVERHEAD_CHARS = 4096  # room for hd and extra fields on top of the texts


@dataclass(frozen=True, slots=True)
class IncomingFrame:
    participant: str
    body: dict[str, Any]  # the frame to store: the client's, with `hd.role` filled in
    prompt: str | None  # what to ask the model; None when the model is not asked


def parse_frame(raw: str, max_length: int) -> IncomingFrame:
    """Validate a client's text frame; a `ChatError` says what is wrong with it."""
    if len(raw) > 4 * max_length + FRAME_OVERHEAD_CHARS:
        raise ChatError(message_too_long(max_length))
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ChatError(invalid_field("payload")) from None
    if not isinstance(frame, dict):
        raise ChatError(invalid_field("payload"))
    hd, bd = frame.get("hd"), frame.get("bd")
    if not isinstance(hd, dict):
        raise ChatError(invalid_field("hd"))
    if not isinstance(bd, dict):
        raise ChatError(invalid_field("bd"))
    event = hd.get("event")
    if not isinstance(event, str) or event not in CLIENT_EVENTS:
        raise ChatError(invalid_field("hd.event"))
    participant = _participant(hd.get("role"))
    if hd.get("timestamp") is not None and not isinstance(hd["timestamp"], str):
        raise ChatError(invalid_field("hd.timestamp"))

    text, prompt = bd.get("text"), bd.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise ChatError(invalid_field("bd.prompt"))
    asks_with_prompt = bool(prompt and prompt.strip())  # `prompt: ''` is "no prompt"
    if not isinstance(text, str) and not (text is None and asks_with_prompt):
        raise ChatError(invalid_field("bd.text"))
    if any(len(t) > max_length for t in (text, prompt) if isinstance(t, str)):
        raise ChatError(message_too_long(max_length))
    question = prompt if asks_with_prompt else text
    assert isinstance(question, str)
    if not question.strip():
        raise ChatError(MESSAGE_EMPTY)

    body = {**frame, "hd": {**hd, "role": participant}}
    try:  # what is stored and sent must be writable: orjson nests 254 levels at most
        orjson.dumps(body)
    except orjson.JSONEncodeError:
        raise ChatError(invalid_field("payload")) from None
    asks_model = asks_with_prompt or event == LLM_INVOKE
    return IncomingFrame(participant, body, question if asks_model else None)


def _participant(role: Any) -> str:
    if role is None:
        return DEFAULT_PARTICIPANT
    if not isinstance(role, str) or not role.strip() or len(role) > MAX_PARTICIPANT_LENGTH:
        raise ChatError(invalid_field("hd.role"))
    return role


def spoken_text(body: dict[str, Any]) -> str | None:
    """What a stored frame said: its prompt when it asked the model with one, else its text."""
    bd = body.get("bd")
    if not isinstance(bd, dict):
        return None
    prompt, text = bd.get("prompt"), bd.get("text")
    if isinstance(prompt, str) and prompt.strip():
        return prompt
    return text if isinstance(text, str) else None


def with_timestamp(body: dict[str, Any], iso: str) -> dict[str, Any]:
    """The frame with `hd.timestamp` set, unless the client gave one (never replaced)."""
    hd = body["hd"]
    if hd.get("timestamp") is not None:
        return body
    return {**body, "hd": {**hd, "timestamp": iso}}


def streaming_frame(delta: str) -> dict[str, Any]:
    return {"hd": {"event": LLM_STREAMING, "role": LLM_PARTICIPANT}, "bd": {"text": delta}}


def response_frame(text: str) -> dict[str, Any]:
    return {"hd": {"event": LLM_RESPONSE, "role": LLM_PARTICIPANT}, "bd": {"text": text}}


def error_frame(text: str) -> dict[str, Any]:
    return {"hd": {"event": ERROR}, "bd": {"text": text}}
