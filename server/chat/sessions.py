"""Chat sessions (`chat_sessions`): join, ownership, activity and the idle rule (§1.3)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from tortoise.exceptions import IntegrityError

from models import ChatSession
from server.chat import clock
from server.errors import SESSION_FORBIDDEN, SESSION_NOT_FOUND, ChatError


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

    async def join(self, user_id: str, session_id: str | None) -> JoinedSession:
        if session_id is None:
            return await self._create(user_id, str(uuid.uuid4()))
        row = await ChatSession.get_or_none(session_id=session_id)
        if row is None:
            try:
                return await self._create(user_id, session_id)
            except IntegrityError:  # created by a concurrent join a moment ago
                row = await ChatSession.get(session_id=session_id)
        if row.user_id != user_id:
            raise ChatError(SESSION_FORBIDDEN)
        now = clock.now()
        expired = not row.is_active or now - row.last_activity > self.timeout
        await ChatSession.filter(session_id=session_id).update(
            is_active=True, last_activity=now, updated_at=now
        )
        self._last_touch[session_id] = time.monotonic()
        return JoinedSession(session_id, user_id, is_new=False, reactivated=expired)

    async def _create(self, user_id: str, session_id: str) -> JoinedSession:
        now = clock.now()
        await ChatSession.create(
            user_id=user_id, session_id=session_id, is_active=True, last_activity=now
        )
        self._last_touch[session_id] = time.monotonic()
        return JoinedSession(session_id, user_id, is_new=True, reactivated=False)

    async def touch_active(self, session_id: str) -> None:
        """Mark activity; fails with `세션을 찾을 수 없습니다` if the session is not active."""
        now = clock.now()
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
        rows = await ChatSession.filter(session_id__in=ids, is_active=False).values_list(
            "session_id", flat=True
        )
        ended = {str(session_id) for session_id in rows}
        for session_id in ended:
            self._last_touch.pop(session_id, None)
        return ended

    async def exists(self, session_id: str) -> bool:
        return await ChatSession.filter(session_id=session_id).exists()
