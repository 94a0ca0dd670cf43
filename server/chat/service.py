"""The chat conversation core: what every protocol adapter calls."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from models import Sender
from server.ai.base import LLM, PromptMessage
from server.chat.history import HistoryStore, StoredMessage
from server.chat.sessions import ChatSessionService, JoinedSession
from server.conversation.lanes import Lanes
from server.conversation.ratelimit import Limiter
from server.conversation.tools import Toolbox
from server.conversation.turn import DeltaSink, answer_within
from server.errors import ChatError
from server.logs import preview
from server.safety.detector import SafetyFlag
from server.safety.layer import SafetyLayer
from server.texts import GREETING, MESSAGE_EMPTY, RATE_LIMITED, SESSION_NOT_FOUND, message_too_long

log = logging.getLogger(__name__)

HISTORY_LIMIT = 50
PROTOCOL = "/chat"  # the label of metrics and safety alerts
_ROLE_OF_SENDER = {"user": "user", "assistant": "assistant", "system": "system"}


@dataclass(frozen=True, slots=True)
class JoinResult:
    session: JoinedSession
    history: list[StoredMessage]
    greeting: StoredMessage | None


class ChatService:
    def __init__(
        self,
        *,
        sessions: ChatSessionService,
        history: HistoryStore,
        llm: LLM,
        toolbox: Toolbox,
        limiter: Limiter,
        system_prompt: str,
        max_message_length: int,
        context_messages: int,
        ai_timeout_seconds: float,
        safety: SafetyLayer,
    ) -> None:
        self.safety = safety
        self.sessions = sessions
        self.store = history
        self.llm = llm
        self.toolbox = toolbox
        self.limiter = limiter
        self.system_prompt = system_prompt
        self.max_message_length = max_message_length
        self.context_messages = context_messages
        self.ai_timeout = ai_timeout_seconds
        self._turns = Lanes()
        # user messages stored and acknowledged but not answered yet, per session
        self._pending: dict[str, set[str]] = {}

    async def join(self, user_id: str, session_id: str | None) -> JoinResult:
        joined = await self.sessions.join(user_id, session_id)
        if not joined.is_new:
            history = await self.store.recent(joined.session_id, HISTORY_LIMIT)
            return JoinResult(joined, history, None)
        self.store.started(joined.session_id)
        greeting = await self.store.add(joined.session_id, Sender.ASSISTANT, GREETING)
        return JoinResult(joined, [], greeting)

    async def missed(self, session_id: str, last_seen_id: str) -> list[StoredMessage]:
        """What a client that saw `last_seen_id` last has not seen: the user and assistant
        messages stored after it, in order (nothing when the id is not of this session)."""
        later = await self.store.after(session_id, last_seen_id)
        if later is None:
            log.info("resume from an unknown message id", extra={"session": session_id})
            return []
        return [m for m in later if m.sender in (Sender.USER.value, Sender.ASSISTANT.value)]

    async def history(self, session_id: str, limit: int = HISTORY_LIMIT) -> list[StoredMessage]:
        return await self.store.recent(session_id, max(1, min(limit, HISTORY_LIMIT)))

    async def touch(self, session_id: str) -> None:
        await self.sessions.touch_lightly(session_id)

    async def accept(self, session_id: str, text: str) -> StoredMessage:
        """Validate and store a user message; after this it may be acknowledged."""
        if not text.strip():
            raise ChatError(MESSAGE_EMPTY)
        if len(text) > self.max_message_length:
            raise ChatError(message_too_long(self.max_message_length))
        if not await self.limiter.allow(session_id):
            raise ChatError(RATE_LIMITED)
        # `last_activity` is refreshed at most every few seconds (the idle timeout is
        # minutes); whether the session is active is checked by the insert itself
        await self.sessions.touch_lightly(session_id)
        flag = await self.safety.assess(text, protocol=PROTOCOL, session_id=session_id)
        metadata = {"safety": flag.as_metadata()} if flag is not None else None
        stored = await self.store.add_if_active(session_id, Sender.USER, text, metadata=metadata)
        if stored is None:
            raise ChatError(SESSION_NOT_FOUND)
        self._pending.setdefault(session_id, set()).add(stored.id)
        log.info("user message", extra={"session": session_id, "text": preview(text)})
        return stored

    async def reply(
        self, user_message: StoredMessage, on_delta: DeltaSink | None = None
    ) -> StoredMessage:
        """Answer one stored user message; turns of a session run in the order accepted."""
        session_id = user_message.session_id
        try:
            async with self._turns.lane(session_id):
                context = await self._context(user_message)
                result = await answer_within(
                    self.llm,
                    self.toolbox,
                    context,
                    on_delta,
                    timeout=self.ai_timeout,
                    log_context={"session": session_id},
                    safety=SafetyFlag.from_metadata(user_message.metadata),
                )
                metadata: dict[str, Any] = {"replyTo": user_message.id}
                if result.tools_used:
                    metadata["tools"] = result.tools_used
                if result.safety is not None:
                    metadata["safety"] = result.safety.as_metadata()
                return await self.store.add(
                    session_id, Sender.ASSISTANT, result.text, metadata=metadata
                )
        finally:
            pending = self._pending.get(session_id)
            if pending is not None:
                pending.discard(user_message.id)
                if not pending:
                    del self._pending[session_id]

    async def _context(self, current: StoredMessage) -> list[PromptMessage]:
        """System prompt + the last N messages in conversation order, ending with the
        message being answered.

        Questions sent in a burst are stored before their answers; each answer is put back
        right after its question (`metadata.replyTo`), and later questions still waiting in
        the queue are left out, so the model answers one question at a time, in order.
        """
        waiting = self._pending.get(current.session_id, set()) - {current.id}
        recent = await self.store.context(
            current.session_id, 2 * self.context_messages + len(waiting)
        )
        earlier = [
            m for m in conversation_order(recent) if m.id != current.id and m.id not in waiting
        ]
        kept = [*earlier[max(0, len(earlier) - self.context_messages + 1) :], current]
        return [PromptMessage("system", self.system_prompt), *_as_prompt(kept)]


def conversation_order(messages: Sequence[StoredMessage]) -> list[StoredMessage]:
    """Each reply right after the message it answers; everything else in stored order."""
    present = {m.id for m in messages}
    replies: dict[str, list[StoredMessage]] = {}
    for m in messages:
        reply_to = (m.metadata or {}).get("replyTo")
        if reply_to in present:
            replies.setdefault(reply_to, []).append(m)
    ordered: list[StoredMessage] = []
    for m in messages:
        if (m.metadata or {}).get("replyTo") in present:
            continue
        ordered.append(m)
        ordered.extend(replies.get(m.id, ()))
    return ordered


def _as_prompt(messages: Sequence[StoredMessage]) -> list[PromptMessage]:
    return [
        PromptMessage(_ROLE_OF_SENDER.get(m.sender, "user"), m.content)  # type: ignore[arg-type]
        for m in messages
    ]
