"""Room frames (CONTRACT §4): `{hd: {event, role, timestamp?}, bd: {text, prompt?}}`.

The frame a client sends is what the log stores and every client of the room receives, so
the room's core and its wire format are the same shape; this module is that shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from server.errors import ChatError
from server.texts import MESSAGE_EMPTY, invalid_field, message_too_long

CHAT_MESSAGE = "chat.message"
LLM_INVOKE = "llm.invoke"
LLM_STREAMING = "llm.streaming"
LLM_RESPONSE = "llm.response"
ERROR = "error"

LLM_PARTICIPANT = "llm"
DEFAULT_PARTICIPANT = "user"  # a frame without `hd.role`
MAX_PARTICIPANT_LENGTH = 32  # `room_messages.participant`
FRAME_OVERHEAD_CHARS = 4096  # room for hd and extra fields on top of the texts


ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class IncomingFrame:
    participant: str
    body: dict[str, Any]  # the frame to store: the client's, with `hd.role` filled in
    prompt: str | None  # what to ask the model; None when the model is not asked


class _Envelope(BaseModel):
    model_config = ConfigDict(strict=True)

    hd: dict[str, Any]
    bd: dict[str, Any]


class _Head(BaseModel):
    model_config = ConfigDict(strict=True)

    event: Literal["chat.message", "llm.invoke"]  # what a client may send
    role: str | None = Field(default=None, max_length=MAX_PARTICIPANT_LENGTH)
    timestamp: str | None = None

    @field_validator("role")
    @classmethod
    def _not_blank(cls, role: str | None) -> str | None:
        if role is not None and not role.strip():
            raise ValueError("blank role")
        return role


class _Body(BaseModel):
    model_config = ConfigDict(strict=True)

    prompt: str | None = None  # checked first
    text: str | None = None


def _validated(model: type[ModelT], data: Any, prefix: str = "") -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        field = ".".join(str(p) for p in exc.errors()[0]["loc"])
        raise ChatError(invalid_field(prefix + field)) from None


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
    envelope = _validated(_Envelope, frame)
    hd = _validated(_Head, envelope.hd, "hd.")
    bd = _validated(_Body, envelope.bd, "bd.")
    participant = hd.role if hd.role is not None else DEFAULT_PARTICIPANT

    text, prompt = bd.text, bd.prompt
    asks_with_prompt = bool(prompt and prompt.strip())  # `prompt: ''` is "no prompt"
    if text is None and not asks_with_prompt:
        raise ChatError(invalid_field("bd.text"))
    if any(len(t) > max_length for t in (text, prompt) if t is not None):
        raise ChatError(message_too_long(max_length))
    question = prompt if asks_with_prompt else text
    assert question is not None
    if not question.strip():
        raise ChatError(MESSAGE_EMPTY)

    body = {**frame, "hd": {**envelope.hd, "role": participant}}
    try:  # what is stored and sent must be writable: orjson nests 254 levels at most
        orjson.dumps(body)
    except orjson.JSONEncodeError:
        raise ChatError(invalid_field("payload")) from None
    asks_model = asks_with_prompt or hd.event == LLM_INVOKE
    return IncomingFrame(participant, body, question if asks_model else None)


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
