"""What is stored about a user on every protocol, listed, exported and erased.

How each protocol's ids map to a user (docs/operations.md has the table):

- `/chat`: sessions whose `chat_sessions.user_id` is the user (the token's user with
  AUTH_SECRET, the `userId` the client sent without).
- calls: calls whose chat session is the user's (the token's user; without AUTH_SECRET the
  caller's number, digits only).
- `/ws/chat/{client_id}`: the client ids the user owns (`session_owners`, AUTH_SECRET);
  without it, the client id equal to the user id.
- `/ws/session/{id}`: the session ids the user owns (AUTH_SECRET); without it, the session id
  equal to the user id.
- `/v1/session/chat?sid=`: the rooms the user opened first (AUTH_SECRET); without it none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from tortoise.expressions import Q
from tortoise.functions import Count

from models import ChatMessage, ChatSession
from models.agents import AgentMessage, AgentReport
from models.calls import Call
from models.counseling import Conversation
from models.owners import SessionOwner
from models.rooms import RoomMessage
from server.chat import clock
from server.ownership import Kind
from server.rooms.redis_log import stream_key

MAX_ID_LENGTH = 255
AGENT_CLIENT_ID_LENGTH = 255  # `agent_messages.client_id`
COUNSELING_ID_LENGTH = 128  # `conversations.session_id`


class UnknownCursor(Exception):
    """`before` names nothing on this list."""


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next: str | None  # the `before` of the next page; None on the last one


def message_json(m: ChatMessage) -> dict[str, Any]:
    return {
        "id": m.id,
        "sessionId": m.session_id,
        "sender": m.sender,
        "messageType": m.message_type,
        "content": m.content,
        "createdAt": clock.to_iso(m.created_at),
    }


async def session_page(
    *, user_id: str | None, active: bool | None, limit: int, before: str | None
) -> Page:
    """Chat sessions, newest first (by creation), with their number of messages."""
    query = ChatSession.all()
    if user_id is not None:
        query = query.filter(user_id=user_id)
    if active is not None:
        query = query.filter(is_active=active)
    rows, more = await _newest_first(query, ChatSession, "session_id", 255, before, limit)
    counts = await _message_counts([r.session_id for r in rows])
    items = [
        {
            "sessionId": r.session_id,
            "userId": r.user_id,
            "isActive": r.is_active,
            "lastActivity": clock.to_iso(r.last_activity),
            "createdAt": clock.to_iso(r.created_at),
            "messageCount": counts.get(r.session_id, 0),
        }
        for r in rows
    ]
    return Page(items, rows[-1].session_id if more and rows else None)


async def _message_counts(session_ids: Sequence[str]) -> dict[str, int]:
    if not session_ids:
        return {}
    rows = (
        await ChatMessage.filter(session_id__in=list(session_ids))
        .annotate(n=Count("id"))
        .group_by("session_id")
        .values("session_id", "n")
    )
    return {str(r["session_id"]): int(r["n"]) for r in rows}


async def message_page(session_id: str, *, limit: int, before: str | None) -> Page:
    """A session's messages, the newest `limit` older than `before`, oldest first."""
    query = ChatMessage.filter(session_id=session_id)
    rows, more = await _newest_first(
        query, ChatMessage, "id", 36, before, limit, session_id=session_id
    )
    rows.reverse()
    return Page([message_json(m) for m in rows], rows[0].id if more and rows else None)


async def call_page(
    *, status: str | None, limit: int, before: str | None
) -> tuple[list[Call], str | None]:
    """Calls, newest first."""
    query = Call.all()
    if status is not None:
        query = query.filter(status=status)
    rows, more = await _newest_first(query, Call, "id", 36, before, limit)
    return rows, rows[-1].id if more and rows else None


async def _newest_first(
    query: Any,
    model: Any,
    key: str,
    key_length: int,
    before: str | None,
    limit: int,
    **scope: Any,
) -> tuple[list[Any], bool]:
    """One page of `query`, newest first (`created_at`, then `key`), strictly older than the
    row whose `key` is `before` (within `scope`); the rows and whether more follow."""
    if before is not None:
        mark = (
            await model.get_or_none(**{key: before}, **scope) if len(before) <= key_length else None
        )
        if mark is None:
            raise UnknownCursor()
        query = query.filter(
            Q(created_at__lt=mark.created_at)
            | Q(created_at=mark.created_at, **{f"{key}__lt": getattr(mark, key)})
        )
    rows = list(await query.order_by("-created_at", f"-{key}").limit(limit + 1))
    return rows[:limit], len(rows) > limit


async def transcript(session_id: str) -> list[dict[str, Any]]:
    rows = await ChatMessage.filter(session_id=session_id).order_by("created_at", "id")
    return [message_json(m) for m in rows]


async def delete_session(session_id: str) -> dict[str, int] | None:
    """Erase a chat session (or a call's) with its messages and its call; None if unknown."""
    session = await ChatSession.get_or_none(session_id=session_id)
    if session is None:
        return None
    messages = await ChatMessage.filter(session_id=session_id).delete()
    calls = await Call.filter(session_id=session_id).delete()
    await ChatSession.filter(session_id=session_id).delete()
    return {"chatSessions": 1, "chatMessages": messages, "calls": calls}


@dataclass(frozen=True, slots=True)
class UserKeys:
    """The ids under which a user's data is stored, on each protocol."""

    chat_sessions: list[str]
    call_sessions: list[str]
    agent_clients: list[str]
    counseling_sessions: list[str]
    rooms: list[str]


async def keys_of(user_id: str, *, authenticated: bool) -> UserKeys:
    sessions = await ChatSession.filter(user_id=user_id).values_list("session_id", flat=True)
    session_ids = [str(s) for s in sessions]
    call_sessions = [
        str(s)
        for s in await Call.filter(session_id__in=session_ids).values_list("session_id", flat=True)
    ]
    owned: dict[str, list[str]] = {kind.value: [] for kind in Kind}
    for kind, key in await SessionOwner.filter(user_id=user_id).values_list("kind", "session_id"):
        owned.setdefault(str(kind), []).append(str(key))
    agents = owned[Kind.AGENT_CLIENT.value]
    counseling = owned[Kind.COUNSELING.value]
    if not authenticated:  # the only link there is: the id itself (if it fits the column)
        if len(user_id) <= AGENT_CLIENT_ID_LENGTH:
            agents = sorted({*agents, user_id})
        if len(user_id) <= COUNSELING_ID_LENGTH:
            counseling = sorted({*counseling, user_id})
    return UserKeys(
        chat_sessions=[s for s in session_ids if s not in set(call_sessions)],
        call_sessions=call_sessions,
        agent_clients=agents,
        counseling_sessions=counseling,
        rooms=owned[Kind.ROOM.value],
    )


async def export_user(
    user_id: str, *, authenticated: bool, redis: Redis | None, call_json: Any
) -> dict[str, Any]:
    """One JSON document of everything stored about `user_id`."""
    keys = await keys_of(user_id, authenticated=authenticated)
    sessions = await ChatSession.filter(session_id__in=keys.chat_sessions).order_by("created_at")
    calls = await Call.filter(session_id__in=keys.call_sessions).order_by("created_at")
    agent_messages = await AgentMessage.filter(client_id__in=keys.agent_clients).order_by(
        "created_at"
    )
    reports = await AgentReport.filter(client_id__in=keys.agent_clients).order_by("created_at")
    exchanges = await Conversation.filter(session_id__in=keys.counseling_sessions).order_by(
        "created_at"
    )
    return {
        "userId": user_id,
        "exportedAt": clock.to_iso(clock.now()),
        "chatSessions": [
            {
                "sessionId": s.session_id,
                "isActive": s.is_active,
                "lastActivity": clock.to_iso(s.last_activity),
                "createdAt": clock.to_iso(s.created_at),
                "messages": await transcript(s.session_id),
            }
            for s in sessions
        ],
        "calls": [{**call_json(c), "transcript": await transcript(c.session_id)} for c in calls],
        "agentChat": {
            "messages": [
                {
                    "clientId": m.client_id,
                    "projectId": m.project_id,
                    "agentName": m.agent_name,
                    "role": m.role,
                    "content": m.content,
                    "createdAt": clock.to_iso(m.created_at),
                }
                for m in agent_messages
            ],
            "reports": [
                {
                    "clientId": r.client_id,
                    "projectId": r.project_id,
                    "agentName": r.agent_name,
                    "task": r.task,
                    "content": r.content,
                    "createdAt": clock.to_iso(r.created_at),
                    "deliveredAt": clock.to_iso(r.delivered_at) if r.delivered_at else None,
                }
                for r in reports
            ],
        },
        "counseling": [
            {
                "sessionId": e.session_id,
                "userMessage": e.user_message,
                "aiResponse": e.ai_response,
                "emotion": e.emotion,
                "timestamp": e.timestamp,
                "createdAt": clock.to_iso(e.created_at),
            }
            for e in exchanges
        ],
        "rooms": [{"sid": sid, "messages": await _room_messages(sid, redis)} for sid in keys.rooms],
    }


async def _room_messages(sid: str, redis: Redis | None) -> list[dict[str, Any]]:
    rows = await RoomMessage.filter(session_id=sid).order_by("created_at")
    out: list[dict[str, Any]] = [
        {
            "id": r.id,
            "participant": r.participant,
            "body": r.body,
            "createdAt": clock.to_iso(r.created_at),
        }
        for r in rows
    ]
    if redis is not None:
        import orjson

        entries: list[Any] = await redis.xrange(stream_key(sid)) or []
        for entry_id, fields in entries:
            decoded = {_text(k): _text(v) for k, v in (fields or {}).items()}
            body: Any = decoded.get("body", "")
            try:
                body = orjson.loads(body)
            except orjson.JSONDecodeError:
                pass
            out.append(
                {"id": _text(entry_id), "participant": decoded.get("participant"), "body": body}
            )
    return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def erase_user(
    user_id: str, *, authenticated: bool, redis: Redis | None
) -> tuple[dict[str, int], list[str]]:
    """Delete everything stored about `user_id`: what was erased (counts), and the chat
    sessions that were (their sockets are to be told)."""
    keys = await keys_of(user_id, authenticated=authenticated)
    sessions = keys.chat_sessions + keys.call_sessions
    counts = {
        "chatMessages": await ChatMessage.filter(session_id__in=sessions).delete(),
        "calls": await Call.filter(session_id__in=keys.call_sessions).delete(),
        "chatSessions": await ChatSession.filter(session_id__in=sessions).delete(),
        "agentMessages": await AgentMessage.filter(client_id__in=keys.agent_clients).delete(),
        "agentReports": await AgentReport.filter(client_id__in=keys.agent_clients).delete(),
        "counselingExchanges": await Conversation.filter(
            session_id__in=keys.counseling_sessions
        ).delete(),
        "roomMessages": await RoomMessage.filter(session_id__in=keys.rooms).delete(),
    }
    if redis is not None and keys.rooms:
        for sid in keys.rooms:
            counts["roomMessages"] += int(await redis.xlen(stream_key(sid)))
        await redis.delete(*(stream_key(sid) for sid in keys.rooms))
    counts["ownerships"] = await SessionOwner.filter(user_id=user_id).delete()
    return counts, sessions
