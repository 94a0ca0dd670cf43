"""Chat sessions (`chat_sessions`): join, ownership, activity and the idle rule (§1.3)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from models import ChatSession
from server.chat import clock
from server.chat.batch import Batcher, gate_for
from server.errors import ChatError
from server.sql import for_dialect
from server.texts import SESSION_FORBIDDEN, SESSION_NOT_FOUND

_SESSION_ID_LENGTH = 255  # `chat_sessions.session_id`


@dataclass(frozen=True, slots=True)
class JoinedSession:
    session_id: str
    user_id: str
    is_new: bool
    reactivated: bool


class ChatSessionService:
    def __init__(self, timeout_seconds: float) -> None:
        self.timeout = timedelta(seconds=timeout_seconds)
        # Typing can arrive many times a second; `last_activity` needs far less precision.
        self._touch_every = min(10.0, timeout_seconds / 10)
        self._last_touch: dict[str, float] = {}
        self._inserts: _SessionInserts | None = None

    def _gate(self) -> asyncio.Semaphore:
        """The queue the chat's statements share (`server.chat.batch`): the ORM's pool
        itself is not first come, first served, and a thousand joins at once showed it."""
        return gate_for(ChatSession._meta.db)

    async def join(self, user_id: str, session_id: str | None) -> JoinedSession:
        if session_id is None:
            return await self._create(user_id, str(uuid.uuid4()))
        async with self._gate():
            row = await ChatSession.get_or_none(session_id=session_id)
        if row is None:
            try:
                return await self._create(user_id, session_id)
            except IntegrityError:  # created by a concurrent join a moment ago
                async with self._gate():
                    row = await ChatSession.get(session_id=session_id)
        if row.user_id != user_id:
            raise ChatError(SESSION_FORBIDDEN)
        now = clock.now()
        expired = not row.is_active or now - row.last_activity > self.timeout
        async with self._gate():
            await ChatSession.filter(session_id=session_id).update(
                is_active=True, last_activity=now, updated_at=now
            )
        self._last_touch[session_id] = time.monotonic()
        return JoinedSession(session_id, user_id, is_new=False, reactivated=expired)

    async def _create(self, user_id: str, session_id: str) -> JoinedSession:
        conn = ChatSession._meta.db
        if self._inserts is None or self._inserts.conn is not conn:
            self._inserts = _SessionInserts(conn)
        await self._inserts.add(user_id, session_id, clock.now())
        self._last_touch[session_id] = time.monotonic()
        return JoinedSession(session_id, user_id, is_new=True, reactivated=False)

    async def touch_active(self, session_id: str) -> None:
        """Mark activity; fails with `세션을 찾을 수 없습니다` if the session is not active."""
        now = clock.now()
        async with self._gate():
            updated = await ChatSession.filter(session_id=session_id, is_active=True).update(
                last_activity=now, updated_at=now
            )
        if not updated:
            raise ChatError(SESSION_NOT_FOUND)
        self._last_touch[session_id] = time.monotonic()

    async def touch_lightly(self, session_id: str) -> None:
        """Activity that may be coalesced (typing): at most one write per few seconds."""
        last = self._last_touch.get(session_id)
        if last is not None and time.monotonic() - last < self._touch_every:
            return
        await self.touch_active(session_id)

    async def deactivate_idle(self) -> int:
        """One UPDATE for every idle session; idempotent, so every instance may run it."""
        cutoff = clock.now() - self.timeout
        horizon = time.monotonic() - self.timeout.total_seconds()
        self._last_touch = {k: t for k, t in self._last_touch.items() if t > horizon}
        return await ChatSession.filter(is_active=True, last_activity__lt=cutoff).update(
            is_active=False, updated_at=clock.now()
        )

    async def inactive_among(self, session_ids: Iterable[str]) -> set[str]:
        ids = list(session_ids)
        if not ids:
            return set()
        rows = await ChatSession.filter(session_id__in=ids).values_list("session_id", "is_active")
        found = {str(session_id): bool(is_active) for session_id, is_active in rows}
        ended = {s for s in ids if found.get(s) is False}
        for session_id in set(ids) - found.keys():
            # deleted (privacy routes, retention), or spelt otherwise by a collation that
            # ignores case or trailing spaces (MySQL): asked on its own
            state = await ChatSession.filter(session_id=session_id).values_list(
                "is_active", flat=True
            )
            if not any(state):
                ended.add(session_id)
        for session_id in ended:
            self._last_touch.pop(session_id, None)
        return ended

    async def exists(self, session_id: str) -> bool:
        if len(session_id) > _SESSION_ID_LENGTH:  # names no session; the ORM refuses to compare
            return False
        return await ChatSession.filter(session_id=session_id).exists()


class _SessionInserts:
    """New sessions, batched like the messages (`server.chat.batch`): a thousand clients
    joining at once are a few multi-row INSERTs. A duplicate `session_id` fails its own row
    only, with the ORM's `IntegrityError`."""

    def __init__(self, conn: BaseDBAsyncClient) -> None:
        self.conn = conn
        self.dialect = conn.capabilities.dialect
        self._row = "(" + ", ".join(["?"] * 7) + ")"
        self._batcher: Batcher[Sequence[Any], None] = Batcher(self._insert_many, gate_for(conn))

    async def add(self, user_id: str, session_id: str, now: datetime) -> None:
        await self._batcher.submit((str(uuid.uuid4()), user_id, session_id, True, now, now, now))

    async def _insert_many(self, rows: Sequence[Sequence[Any]]) -> list[None]:
        sql = (
            "INSERT INTO chat_sessions (id, user_id, session_id, is_active, last_activity, "
            f"created_at, updated_at) VALUES {', '.join([self._row] * len(rows))}"
        )
        await self.conn.execute_query(
            for_dialect(sql, self.dialect),
            [v for row in rows for v in row],
        )
        return [None] * len(rows)
