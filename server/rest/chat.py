"""Chat REST (CONTRACT §1.5): a session's stored messages, and health."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel

from server import db
from server.auth import Forbidden, Refused, request_grant
from server.chat import clock
from server.chat.service import ChatService
from server.ownership import chat_session_owner
from server.rest.openapi import ApiRegistry, Operation, auth_responses
from server.texts import SESSION_NOT_FOUND


class MessageOut(BaseModel):
    id: str
    sessionId: str
    sender: Literal["user", "assistant", "system"]
    messageType: Literal["TEXT", "AUDIO", "SYSTEM"]
    content: str
    createdAt: str


class SessionMessages(BaseModel):
    """The session's stored messages, oldest first (at most the last 50)."""

    messages: list[MessageOut]


class ErrorMessage(BaseModel):
    """Error"""

    message: str


class Health(BaseModel):
    """Service health; 503 when the database does not answer."""

    status: Literal["ok"]  # the process answers; `db` and the HTTP status tell the rest
    db: Literal["ok", "error"]
    aiProvider: str
    uptimeSeconds: float


def add_chat_routes(
    app: web.Application, api: ApiRegistry, chat: web.AppKey[ChatService], started: float
) -> None:
    async def session_messages(request: web.Request) -> web.Response:
        session_id = request.match_info["sessionId"]
        service = request.app[chat]
        try:  # with AUTH_SECRET, only the session's own user reads it
            user = request_grant(request).user
            if user is not None and await chat_session_owner(session_id) not in (None, user):
                raise Forbidden()
        except Refused as exc:
            return web.json_response({"message": exc.message}, status=exc.status)
        if not await service.sessions.exists(session_id):
            return web.json_response({"message": SESSION_NOT_FOUND}, status=404)
        messages = await service.history(session_id)
        body = {
            "messages": [
                {
                    "id": m.id,
                    "sessionId": m.session_id,
                    "sender": m.sender,
                    "messageType": m.message_type,
                    "content": m.content,
                    "createdAt": clock.to_iso(m.created_at),
                }
                for m in messages
            ]
        }
        return web.json_response(body)

    async def health(request: web.Request) -> web.Response:
        db_ok = await db.ping()
        body = {
            "status": "ok",
            "db": "ok" if db_ok else "error",
            "aiProvider": request.app[chat].llm.name,
            "uptimeSeconds": round(clock.now().timestamp() - started, 3),
        }
        return web.json_response(body, status=200 if db_ok else 503)

    api.add(
        app,
        Operation(
            "GET",
            "/api/v1/chat/sessions/{sessionId}/messages",
            "chat",
            "Stored messages of a chat session",
            {200: SessionMessages, 404: ErrorMessage, **auth_responses(app, ErrorMessage)},
        ),
        session_messages,
    )
    api.add(
        app,
        Operation("GET", "/api/v1/health", "chat", "Health", {200: Health, 503: Health}),
        health,
    )
