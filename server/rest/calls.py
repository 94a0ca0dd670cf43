"""Calls REST (CONTRACT §2.1): place, connect, end and look up calls; the WebRTC config;
one spoken turn over HTTP. Envelope `{success: true, data}` / `{success: false, error}`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ValidationError

from models.calls import Call
from server.admin.privacy import transcript
from server.ai.audio import upload_filename
from server.auth import Refused, request_grant
from server.calls.errors import (
    CallFinished,
    CallNotFound,
    IllegalTransition,
    NothingHeard,
    SpeechFailed,
)
from server.calls.limits import SPEND_LIMITS, SpendLimited, client_key
from server.calls.process import ConversationProcessor
from server.calls.rtc import rtc_configuration
from server.chat import clock
from server.db import DB_UNAVAILABLE_ERRORS
from server.errors import ChatError, InvalidField
from server.keys import CALLS, SENTIMENT, SETTINGS, SPEECH, VOICE_CONVERSATION
from server.ownership import require_owner
from server.rest import calls_schemas as schema
from server.rest.openapi import ApiRegistry, Operation, auth_responses
from server.texts import TEMPORARY_FAILURE, invalid_field

log = logging.getLogger(__name__)

MAX_AUDIO_BYTES = 25 * 1024 * 1024  # OpenAI's transcription limit
MAX_FIELD_BYTES = 16 * 1024  # callId, systemPrompt
# a handler gets the request and the token's user (None without AUTH_SECRET)
DataHandler = Callable[[web.Request, str | None], Awaitable[dict[str, Any]]]
PUBLIC = {"/api/v1/calls/config"}  # answered without a token even with AUTH_SECRET

_STATUS_OF_ERROR: list[tuple[type[ChatError], int]] = [
    (InvalidField, 400),
    (CallNotFound, 404),
    (IllegalTransition, 409),
    (CallFinished, 409),
    (NothingHeard, 422),
    (SpeechFailed, 502),
    (SpendLimited, 429),
]


def add_call_routes(app: web.Application, api: ApiRegistry) -> None:
    auth = auth_responses(app, schema.CallErrorResponse)  # with AUTH_SECRET
    errors: dict[int, type[BaseModel] | None] = {
        400: schema.CallErrorResponse,
        404: schema.CallErrorResponse,
        **auth,
    }
    conflict: dict[int, type[BaseModel] | None] = {**errors, 409: schema.CallErrorResponse}
    routes: list[tuple[Operation, DataHandler]] = [
        # `config` before `{callId}`: the first route that matches wins
        (Operation("GET", "/api/v1/calls/config", "calls", "WebRTC configuration",
                   {200: schema.RtcConfigResponse}), config),
        (Operation("POST", "/api/v1/calls", "calls", "Place a call (status RINGING)",
                   {201: schema.CallResponse, **errors, 429: schema.CallErrorResponse},
                   body=schema.CreateCallBody), create),
        (Operation("POST", "/api/v1/calls/conversation/process", "calls",
                   "One spoken turn: audio -> transcript -> answer -> speech",
                   {200: schema.ProcessedResponse, **conflict, 422: schema.CallErrorResponse,
                    429: schema.CallErrorResponse, 502: schema.CallErrorResponse},
                   body=schema.ProcessConversationForm,
                   body_content_type="multipart/form-data"), process),
        (Operation("POST", "/api/v1/calls/{callId}/connect", "calls", "Connect (CONNECTING)",
                   {200: schema.CallResponse, **conflict}), connect),
        (Operation("POST", "/api/v1/calls/{callId}/end", "calls",
                   "End a call in progress (ENDED, with endedAt and duration)",
                   {200: schema.CallResponse, **conflict}), end),
        (Operation("GET", "/api/v1/calls/{callId}", "calls", "A call and its transcript",
                   {200: schema.CallWithTranscriptResponse, 404: schema.CallErrorResponse,
                    **auth}), get),
    ]  # fmt: skip
    for operation, handler in routes:
        success = min(operation.responses)
        api.add(app, operation, _enveloped(handler, success, public=operation.path in PUBLIC))


async def config(request: web.Request, user: str | None) -> dict[str, Any]:
    return {"config": rtc_configuration(request.app[SETTINGS])}


async def create(request: web.Request, user: str | None) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
        raise InvalidField("body") from None
    if not isinstance(body, dict):
        raise InvalidField("body")
    try:
        payload = schema.CreateCallBody.model_validate(body)
    except ValidationError as exc:
        raise InvalidField(str(exc.errors()[0]["loc"][0])) from None
    await request.app[SPEND_LIMITS].place_call(client_key(request, user))
    call = await request.app[CALLS].create(payload.callerNumber, payload.receiverNumber, owner=user)
    return {"call": call_json(call)}


async def connect(request: web.Request, user: str | None) -> dict[str, Any]:
    call_id = await _own_call(request, request.match_info["callId"], user)
    return {"call": call_json(await request.app[CALLS].connect(call_id))}


async def end(request: web.Request, user: str | None) -> dict[str, Any]:
    call_id = await _own_call(request, request.match_info["callId"], user)
    return {"call": call_json(await request.app[CALLS].end(call_id))}


async def get(request: web.Request, user: str | None) -> dict[str, Any]:
    await _own_call(request, request.match_info["callId"], user)
    call = await request.app[CALLS].get(request.match_info["callId"])
    # what was said, oldest first (the messages of the call's session)
    return {"call": call_json(call), "transcript": await transcript(call.session_id)}


async def _own_call(request: web.Request, call_id: str, user: str | None) -> str:
    """`call_id`, once it is known to be `user`'s call (`Forbidden` otherwise)."""
    if user is not None:
        call = await request.app[CALLS].get(call_id)
        await require_owner(call.session_id, user, not_found=CallNotFound())
    return call_id


async def process(request: web.Request, user: str | None) -> dict[str, Any]:
    form = await _read_form(request)
    audio, call_id = form.get("audio"), form.get("callId")
    if not isinstance(audio, tuple) or not audio[1]:
        raise InvalidField("audio")
    if not isinstance(call_id, str) or not call_id.strip():
        raise InvalidField("callId")
    await _own_call(request, call_id.strip(), user)
    await request.app[SPEND_LIMITS].process_turn(client_key(request, user))
    prompt = form.get("systemPrompt")
    system_prompt = prompt.strip() if isinstance(prompt, str) else ""
    app = request.app
    processor = ConversationProcessor(
        app[CALLS], app[SPEECH], app[VOICE_CONVERSATION], app[SENTIMENT]
    )
    turn = await processor.process(call_id.strip(), audio[1], audio[0], system_prompt or None)
    return {
        "conversation": {
            "userMessage": turn.user_message,
            "aiResponse": turn.ai_response,
            "sentiment": {"sentiment": turn.sentiment.sentiment, "score": turn.sentiment.score},
            "timestamp": clock.to_iso(turn.timestamp),
        },
        "audioUrl": turn.audio_url,
    }


def call_json(call: Call) -> dict[str, Any]:
    """A call as the contract shows it; optional fields only once they have a value."""
    out: dict[str, Any] = {
        "id": call.id,
        "sessionId": call.session_id,
        "callerNumber": call.caller_number,
    }
    if call.receiver_number is not None:
        out["receiverNumber"] = call.receiver_number
    out |= {
        "status": call.status,
        "createdAt": clock.to_iso(call.created_at),
        "updatedAt": clock.to_iso(call.updated_at),
    }
    if call.connected_at is not None:
        out["connectedAt"] = clock.to_iso(call.connected_at)
    if call.ended_at is not None:
        out["endedAt"] = clock.to_iso(call.ended_at)
    if call.duration is not None:
        out["duration"] = call.duration
    return out


async def _read_form(request: web.Request) -> dict[str, str | tuple[str, bytes]]:
    """The multipart fields: files as (filename, bytes), the rest as text; sizes bounded."""
    if not request.content_type.startswith("multipart/"):
        raise InvalidField("audio")
    form: dict[str, str | tuple[str, bytes]] = {}
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            limit = MAX_AUDIO_BYTES if part.name == "audio" else MAX_FIELD_BYTES
            data = await _read_part(part, limit)
            if part.filename is not None or part.name == "audio":
                form[part.name] = (upload_filename(part.filename, data), data)
            else:
                form[part.name] = data.decode(part.get_charset("utf-8"), "replace")
    except (ValueError, AssertionError, LookupError, HttpProcessingError) as exc:  # malformed
        log.info("bad multipart body: %s", exc)
        raise InvalidField("audio") from None
    return form


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk():
        size += len(chunk)
        if size > limit:
            raise InvalidField(part.name or "body")
        chunks.append(chunk)
    return part.decode(b"".join(chunks))


def _enveloped(
    handler: DataHandler, status: int, *, public: bool = False
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def respond(request: web.Request) -> web.Response:
        try:
            user = None if public else request_grant(request).user
            data = await handler(request, user)
        except web.HTTPRequestEntityTooLarge:  # over MAX_PAYLOAD_BYTES
            return _error(invalid_field("body"), 413)
        except Refused as exc:
            return _error(exc.message, exc.status)
        except ChatError as exc:
            code = next((c for kind, c in _STATUS_OF_ERROR if isinstance(exc, kind)), 502)
            return _error(exc.message, code)
        except DB_UNAVAILABLE_ERRORS as exc:
            log.warning("database unavailable: %s", exc)
            return _error(TEMPORARY_FAILURE, 503)
        return web.json_response({"success": True, "data": data}, status=status)

    return respond


def _error(message: str, status: int) -> web.Response:
    return web.json_response({"success": False, "error": {"message": message}}, status=status)
