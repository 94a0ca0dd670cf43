"""The chat conversation core: what every protocol adapter calls."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError
from tortoise.exceptions import IntegrityError

from models import Sender
from server.ai.base import LLM, PromptMessage
from server.chat.history import HistoryStore, StoredMessage
from server.chat.pending import LocalPendingTurns, PendingTurns
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
class Accepted:
    message: StoredMessage
    repeated: bool  # a retry of a message stored before (same `clientMessageId`)


def retry_message_id(session_id: str, client_message_id: str) -> str:
    """The id a message with this client id is stored under: the same for every retry, so
    the primary key itself refuses a second copy, on any instance."""
    return str(uuid.uuid5(_CLIENT_IDS, f"{session_id}\n{client_message_id}"))


_CLIENT_IDS = uuid.UUID("5b0f3c1e-7f0a-4c57-9a43-0c6a8e2f9d11")


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
        pending: PendingTurns | None = None,
        caller_limiter: Limiter | None = None,
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
        self.pending = pending or LocalPendingTurns()
        # the same budget per caller (a user, or a connection) across all its sessions: one
        # socket opening 30 sessions got 30 budgets
        self.caller_limiter = caller_limiter
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

    async def accept(
        self,
        session_id: str,
        text: str,
        client_message_id: str | None = None,
        caller: str | None = None,
    ) -> Accepted:
        """Validate and store a user message; after this it may be acknowledged. A retry
        (the `client_message_id` of a message stored before) stores nothing and is the
        first one again. `caller` (a user, else a connection) is rate-limited as a whole."""
        if not text.strip():
            raise ChatError(MESSAGE_EMPTY)
        if len(text) > self.max_message_length:
            raise ChatError(message_too_long(self.max_message_length))
        message_id = None
        if client_message_id is not None:
            message_id = retry_message_id(session_id, client_message_id)
            first = await self.store.get(session_id, message_id)
            if first is not None:
                return Accepted(first, repeated=True)
        if caller is not None and self.caller_limiter is not None:
            if not await self.caller_limiter.allow(caller):
                raise ChatError(RATE_LIMITED)
        if not await self.limiter.allow(session_id):
            raise ChatError(RATE_LIMITED)
        # `last_activity` is refreshed at most every few seconds (the idle timeout is
        # minutes); whether the session is active is checked by the insert itself
        await self.sessions.touch_lightly(session_id)
        flag = await self.safety.assess(text, protocol=PROTOCOL, session_id=session_id)
        metadata = {"safety": flag.as_metadata()} if flag is not None else None
        try:
            stored = await self.store.add_if_active(
                session_id, Sender.USER, text, metadata=metadata, message_id=message_id
            )
        except IntegrityError:  # the same retry, stored a moment ago by a concurrent send
            first = await self.store.get(session_id, message_id) if message_id else None
            if first is None:
                raise
            return Accepted(first, repeated=True)
        if stored is None:
            raise ChatError(SESSION_NOT_FOUND)
        self._pending.setdefault(session_id, set()).add(stored.id)
        await self.pending.add(session_id, stored.id)
        log.info("user message", extra={"session": session_id, "text": preview(text)})
        return Accepted(stored, repeated=False)

    async def orphaned(self, claimed: list[tuple[str, str]]) -> list[StoredMessage]:
        """Of the turns taken over from a dead instance, the questions still without a
        reply (those answered meanwhile are cleared)."""
        questions = []
        for session_id, message_id in claimed:
            question = await self.store.get(session_id, message_id)
            later = await self.store.after(session_id, message_id) or []
            if question is None or any(_reply_to(m) == message_id for m in later):
                await self.pending.done(session_id, message_id)
                continue
            self._pending.setdefault(session_id, set()).add(question.id)
            questions.append(question)
        return questions

    async def orphaned_in(self, session_id: str) -> list[StoredMessage]:
        """A resuming client's session: its questions orphaned by a dead instance, if any
        lease has run out already (else the periodic pass takes them over later)."""
        try:
            claimed = await self.pending.claim_orphans(session_id)
        except (RedisError, OSError) as exc:
            log.warning("cannot look for orphaned turns: %s", exc)
            return []
        return await self.orphaned(claimed)

    async def reply(
        self, user_message: StoredMessage, on_delta: DeltaSink | None = None
    ) -> StoredMessage:
        """Answer one stored user message; turns of a session run in the order accepted."""
        session_id = user_message.session_id
        settled = True
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
        except asyncio.CancelledError:
            settled = False  # cut off (shutdown): left for another instance to answer
            raise
        finally:
            pending = self._pending.get(session_id)
            if pending is not None:
                pending.discard(user_message.id)
                if not pending:
                    del self._pending[session_id]
            if settled:  # answered, or its failure told: nobody answers it again
                await self.pending.done(session_id, user_message.id)

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


def _reply_to(message: StoredMessage) -> Any:
    return (message.metadata or {}).get("replyTo")


def _as_prompt(messages: Sequence[StoredMessage]) -> list[PromptMessage]:
    return [
        PromptMessage(_ROLE_OF_SENDER.get(m.sender, "user"), m.content)  # type: ignore[arg-type]
        for m in messages
    ]
