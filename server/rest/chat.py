"""Chat REST (CONTRACT §1.5): a session's stored messages, and health."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from server import db
from server.admin.privacy import UnknownCursor, message_page
from server.auth import Forbidden, Refused, request_grant
from server.chat import clock
from server.chat.service import ChatService
from server.ownership import chat_session_owner
from server.rest.openapi import ApiRegistry, Operation, auth_responses
from server.rest.params import ID_PATTERN, BadParameter, bounded_limit, optional_id
from server.texts import MESSAGE_NOT_FOUND, SESSION_NOT_FOUND, invalid_field


class MessageOut(BaseModel):
    id: str
    sessionId: str
    sender: Literal["user", "assistant", "system"]
    messageType: Literal["TEXT", "AUDIO", "SYSTEM"]
    content: str
    createdAt: str


class SessionMessages(BaseModel):
    """The session's stored messages, oldest first: the newest `limit` (50) older than
    `before`; `next` is the `before` of the page of older ones (null: none)."""

    messages: list[MessageOut]
    next: str | None = None


class MessagesQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=200)
    before: str | None = Field(default=None, min_length=1, max_length=36, pattern=ID_PATTERN)


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
        try:  # with AUTH_SECRET, only the session's own user (or an administrator) reads it
            grant = request_grant(request)
            user = None if grant.admin else grant.user
            if user is not None and await chat_session_owner(session_id) not in (None, user):
                raise Forbidden()
        except Refused as exc:
            return web.json_response({"message": exc.message}, status=exc.status)
        try:
            limit = bounded_limit(request.query)
            before = optional_id(request.query, "before", max_length=36)
        except BadParameter as exc:
            return web.json_response({"message": invalid_field(exc.name)}, status=400)
        if not await service.sessions.exists(session_id):
            return web.json_response({"message": SESSION_NOT_FOUND}, status=404)
        try:
            page = await message_page(session_id, limit=limit, before=before)
        except UnknownCursor:
            return web.json_response({"message": MESSAGE_NOT_FOUND}, status=404)
        return web.json_response({"messages": page.items, "next": page.next})

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
            {
                200: SessionMessages,
                400: ErrorMessage,
                404: ErrorMessage,
                **auth_responses(app, ErrorMessage),
            },
            query=MessagesQuery,
        ),
        session_messages,
    )
    api.add(
        app,
        Operation("GET", "/api/v1/health", "chat", "Health", {200: Health, 503: Health}),
        health,
    )
    # the counseling backend's health route, for its operators' probes: the same answer
    api.add(
        app,
        Operation("GET", "/health", "chat", "Health (alias)", {200: Health, 503: Health}),
        health,
    )
