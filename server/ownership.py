"""Who may use which session, with AUTH_SECRET (without it, everyone may use everything).

- a `/chat` session and a call belong to `chat_sessions.user_id` (a call's session is
  created with the call, under the token's user);
- a room `sid`, a counseling `session_id` and an agent `client_id` belong to the first user
  who used it (`session_owners`); a room also admits the users whose token lists its sid in
  the `rooms` claim (an invitation), so several people can share it.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from aiohttp import web
from tortoise.exceptions import IntegrityError

from models import ChatSession
from models.owners import SessionOwner
from server.auth import (
    Forbidden,
    Grant,
    OwnerUnknown,
    Refused,
    authenticate,
    websocket_token,
)
from server.chat import clock
from server.db import DB_UNAVAILABLE_ERRORS
from server.errors import ChatError
from server.keys import SETTINGS

log = logging.getLogger(__name__)

MAX_KEY_LENGTH = 255  # `session_owners.session_id`


class Kind(StrEnum):
    ROOM = "room"
    COUNSELING = "counseling"
    AGENT_CLIENT = "agent"


async def owner(kind: Kind, key: str) -> str | None:
    row = await SessionOwner.get_or_none(kind=kind.value, session_id=key)
    return None if row is None else row.user_id


async def claim(kind: Kind, key: str, user: str) -> str:
    """The owner of `key`: `user` when nobody owned it yet (the first user wins, also
    between instances racing on the unique key)."""
    found = await owner(kind, key)
    if found is not None:
        return found
    try:
        await SessionOwner.create(
            kind=kind.value, session_id=key, user_id=user, created_at=clock.now()
        )
    except IntegrityError:  # claimed by a concurrent request a moment ago
        found = await owner(kind, key)
        if found is None:
            raise
        return found
    log.info("session claimed", extra={"kind": kind.value, "session": key, "user": user})
    return user


async def require_access(kind: Kind, key: str, grant: Grant) -> None:
    """`Forbidden` unless `grant`'s user owns `key` (claiming it if nobody does) or, for a
    room, is invited to it; `OwnerUnknown` when the database does not answer."""
    if grant.user is None:
        return
    if len(key) > MAX_KEY_LENGTH:
        raise Forbidden()
    try:
        owned_by = await claim(kind, key, grant.user)
    except DB_UNAVAILABLE_ERRORS as exc:
        log.warning("database unavailable: %s", exc)
        raise OwnerUnknown() from exc
    if owned_by == grant.user or (kind is Kind.ROOM and key in grant.rooms):
        return
    log.info("session refused", extra={"kind": kind.value, "session": key, "user": grant.user})
    raise Forbidden()


async def admit_websocket(
    request: web.Request, kind: Kind, key: str, token: str | None = None
) -> Grant | Refused:
    """A plain WebSocket's grant (`token`, else `?token=`) once `key` is known to be open to
    its user, or the refusal to send (with its close code). Called before the upgrade, so a
    client that sees its socket open is already in: the refusal is told after it."""
    try:
        grant = authenticate(request.app[SETTINGS].auth_secret, token or websocket_token(request))
        await require_access(kind, key, grant)
    except Refused as exc:
        return exc
    return grant


async def chat_session_owner(session_id: str) -> str | None:
    """The user of a `/chat` session or of a call's session; None when there is none."""
    if len(session_id) > MAX_KEY_LENGTH:
        return None
    row = await ChatSession.get_or_none(session_id=session_id)
    return None if row is None else row.user_id


async def require_owner(session_id: str, user: str | None, not_found: ChatError) -> None:
    """A `/chat` session or a call's session: `Forbidden` unless `user` owns it, `not_found`
    when there is no such session; nothing to check without AUTH_SECRET (`user` None)."""
    if user is None:
        return
    owned_by = await chat_session_owner(session_id)
    if owned_by is None:
        raise not_found
    if owned_by != user:
        log.info("session refused", extra={"kind": "chat", "session": session_id, "user": user})
        raise Forbidden()
