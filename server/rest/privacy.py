"""Privacy REST for administrators (`server.admin.access`): list sessions and calls, delete a
session, export or erase everything stored about a user. docs/operations.md shows them."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

from aiohttp import web
from pydantic import BaseModel, Field

from server.admin import privacy
from server.admin.access import admin_identity, audit
from server.auth import Refused
from server.calls.errors import CALL_NOT_FOUND
from server.keys import REDIS, SETTINGS
from server.rest.calls import call_json
from server.rest.calls_schemas import CallErrorResponse, CallOut, CallStatusName
from server.rest.chat import ErrorMessage, MessageOut
from server.rest.openapi import ApiRegistry, Operation, admin_responses
from server.rest.params import (
    ID_PATTERN,
    BadParameter,
    bounded_limit,
    optional_bool,
    optional_id,
    path_id,
)
from server.texts import SESSION_NOT_FOUND, invalid_field

log = logging.getLogger(__name__)


ID_255 = {"maxLength": 255}  # the columns' width: longer ids are refused (400)


class SessionEvictor(Protocol):
    async def evict(self, session_id: str) -> None: ...


SESSION_EVICTOR = web.AppKey("session_evictor", SessionEvictor)


class SessionOut(BaseModel):
    sessionId: str
    userId: str
    isActive: bool
    lastActivity: str
    createdAt: str
    messageCount: int = Field(ge=0)


class SessionList(BaseModel):
    """Chat sessions, newest first; `next` is the `before` of the next page (null: the last)"""

    sessions: list[SessionOut]
    next: str | None


class CallListData(BaseModel):
    calls: list[CallOut]
    next: str | None


class CallList(BaseModel):
    """Calls, newest first; `data.next` is the `before` of the next page (null: the last)"""

    success: Literal[True]
    data: CallListData


class Erased(BaseModel):
    """How many rows of each kind were erased"""

    erased: dict[str, int]


class UserExport(BaseModel):
    """Everything stored about the user, on every protocol (docs/operations.md)"""

    userId: str
    exportedAt: str
    chatSessions: list[dict[str, Any]]
    calls: list[dict[str, Any]]
    agentChat: dict[str, Any]
    counseling: list[dict[str, Any]]
    rooms: list[dict[str, Any]]


class SessionQuery(BaseModel):
    userId: str | None = Field(default=None, min_length=1, max_length=255, pattern=ID_PATTERN)
    active: bool | None = None
    limit: int = Field(default=50, ge=1, le=200)
    before: str | None = Field(default=None, min_length=1, max_length=255, pattern=ID_PATTERN)


class CallQuery(BaseModel):
    status: CallStatusName | None = None
    limit: int = Field(default=50, ge=1, le=200)
    before: str | None = Field(default=None, min_length=1, max_length=36, pattern=ID_PATTERN)


Respond = Callable[[str, int], web.Response]


def _chat_error(message: str, status: int) -> web.Response:
    return web.json_response({"message": message}, status=status)


def _call_error(message: str, status: int) -> web.Response:
    return web.json_response({"success": False, "error": {"message": message}}, status=status)


def _admin_route(
    handler: Callable[[web.Request, str], Awaitable[web.StreamResponse]],
    error: Respond,
    not_found: str = SESSION_NOT_FOUND,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def respond(request: web.Request) -> web.StreamResponse:
        try:
            who = admin_identity(request)
        except Refused as exc:
            log.info("admin route refused", extra={"path": request.path, "status": exc.status})
            return error(exc.message, exc.status)
        try:
            return await handler(request, who)
        except BadParameter as exc:
            return error(invalid_field(exc.name), 400)
        except privacy.UnknownCursor:  # `before` names nothing (any more): 404, as an id would
            return error(not_found, 404)

    return respond


async def list_sessions(request: web.Request, who: str) -> web.Response:
    q = request.query
    page = await privacy.session_page(
        user_id=optional_id(q, "userId"),
        active=optional_bool(q, "active"),
        limit=bounded_limit(q),
        before=optional_id(q, "before"),
    )
    audit(who, "list sessions", q.get("userId"))
    return web.json_response({"sessions": page.items, "next": page.next})


async def delete_session(request: web.Request, who: str) -> web.StreamResponse:
    session_id = path_id(request, "sessionId")
    erased = await privacy.delete_session(session_id)
    if erased is None:
        return _chat_error(SESSION_NOT_FOUND, 404)
    evictor = request.app.get(SESSION_EVICTOR)
    if evictor is not None:
        await evictor.evict(session_id)
    audit(who, "delete session", session_id, **erased)
    return web.Response(status=204)


async def export_user(request: web.Request, who: str) -> web.Response:
    user_id = path_id(request, "userId")
    document = await privacy.export_user(
        user_id,
        authenticated=bool(request.app[SETTINGS].auth_secret),
        redis=request.app.get(REDIS),
        call_json=call_json,
    )
    audit(who, "export user", user_id)
    return web.json_response(document)


async def erase_user(request: web.Request, who: str) -> web.Response:
    user_id = path_id(request, "userId")
    counts, sessions = await privacy.erase_user(
        user_id, authenticated=bool(request.app[SETTINGS].auth_secret), redis=request.app.get(REDIS)
    )
    evictor = request.app.get(SESSION_EVICTOR)
    for session_id in sessions if evictor is not None else ():
        await evictor.evict(session_id)  # type: ignore[union-attr]
    audit(who, "erase user", user_id, **counts)
    return web.json_response({"erased": counts})


async def list_calls(request: web.Request, who: str) -> web.Response:
    q = request.query
    status = q.get("status")
    if status is not None and status not in CallStatusName.__args__:  # type: ignore[attr-defined]
        raise BadParameter("status")
    calls, after = await privacy.call_page(
        status=status, limit=bounded_limit(q), before=optional_id(q, "before", max_length=36)
    )
    audit(who, "list calls", status)
    data = {"calls": [call_json(c) for c in calls], "next": after}
    return web.json_response({"success": True, "data": data})


def add_privacy_routes(app: web.Application, api: ApiRegistry) -> None:
    chat_denied = admin_responses(ErrorMessage)
    calls_denied = admin_responses(CallErrorResponse)
    routes = [
        (Operation("GET", "/api/v1/chat/sessions", "privacy", "List chat sessions (admin)",
                   {200: SessionList, 400: ErrorMessage, 404: ErrorMessage, **chat_denied},
                   query=SessionQuery,
                   admin=True), _admin_route(list_sessions, _chat_error)),
        (Operation("DELETE", "/api/v1/chat/sessions/{sessionId}", "privacy",
                   "Delete a chat session and its messages (admin)",
                   {204: None, 400: ErrorMessage, 404: ErrorMessage, **chat_denied}, admin=True,
                   path_params={"sessionId": ID_255}),
         _admin_route(delete_session, _chat_error)),
        (Operation("GET", "/api/v1/users/{userId}/export", "privacy",
                   "Everything stored about a user, on every protocol (admin)",
                   {200: UserExport, 400: ErrorMessage, **chat_denied}, admin=True,
                   path_params={"userId": ID_255}),
         _admin_route(export_user, _chat_error)),
        (Operation("DELETE", "/api/v1/users/{userId}", "privacy",
                   "Erase everything stored about a user (admin)",
                   {200: Erased, 400: ErrorMessage, **chat_denied}, admin=True,
                   path_params={"userId": ID_255}),
         _admin_route(erase_user, _chat_error)),
        (Operation("GET", "/api/v1/calls", "calls", "List calls (admin)",
                   {200: CallList, 400: CallErrorResponse, 404: CallErrorResponse,
                    **calls_denied}, query=CallQuery,
                   admin=True), _admin_route(list_calls, _call_error, CALL_NOT_FOUND)),
    ]  # fmt: skip
    for operation, handler in routes:
        api.add(app, operation, handler)


__all__ = ["SESSION_EVICTOR", "MessageOut", "add_privacy_routes"]
