"""The counseling core: accept a request, then stream one reply with the session's context."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from server.ai.base import LLM, PromptMessage
from server.conversation.coalesce import DeltaCoalescer
from server.conversation.lanes import Lanes
from server.conversation.ratelimit import Limiter
from server.conversation.tools import Toolbox
from server.conversation.turn import answer_within
from server.counseling.prompts import Emotion, system_prompt
from server.counseling.store import ConversationStore
from server.db import DB_UNAVAILABLE_ERRORS
from server.errors import ChatError
from server.logs import preview
from server.metrics import TurnClock
from server.safety.layer import SafetyLayer
from server.texts import (
    COUNSELING_MESSAGE_EMPTY,
    COUNSELING_RATE_LIMITED,
    TEMPORARY_FAILURE,
    message_too_long,
)

log = logging.getLogger(__name__)

COUNSELING_PROTOCOL = "/ws/session"  # the metrics' label
CONTEXT_EXCHANGES = 10  # CONTRACT §5: the last 10 exchanges of the session
ChunkSink = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class CounselingRequest:
    session_id: str
    message: str
    emotion: Emotion | None
    client_timestamp: int | None  # epoch milliseconds, as the client sent it


class CounselingService:
    def __init__(
        self,
        *,
        llm: LLM,
        store: ConversationStore,
        limiter: Limiter,
        max_message_length: int,
        ai_timeout_seconds: float,
        delta_flush_seconds: float,
        safety: SafetyLayer,
        context_exchanges: int = CONTEXT_EXCHANGES,
    ) -> None:
        self.safety = safety
        # read at every turn, so an operator (or a test) can swap the model of a live server
        self.llm = llm
        self.store = store
        self.limiter = limiter
        self.max_message_length = max_message_length
        self.ai_timeout = ai_timeout_seconds
        self.delta_flush = delta_flush_seconds
        self.context_exchanges = context_exchanges
        # a counselor, not a search assistant: no tools, so replies stay two or three sentences
        self.toolbox = Toolbox([])
        self._turns = Lanes()

    async def accept(
        self,
        session_id: str,
        message: str,
        emotion: Emotion | None,
        client_timestamp: int | None,
    ) -> CounselingRequest:
        """Validate a request and count it against the session's rate limit; a refusal is
        a `ChatError` with the text for `ai_stream_error`."""
        if not message.strip():
            raise ChatError(COUNSELING_MESSAGE_EMPTY)
        if len(message) > self.max_message_length:
            raise ChatError(message_too_long(self.max_message_length))
        if not await self.limiter.allow(session_id):
            log.info(
                "counseling request over the rate limit",
                extra={"session": session_id, "text": preview(message)},
            )
            raise ChatError(COUNSELING_RATE_LIMITED)
        return CounselingRequest(session_id, message, emotion, client_timestamp)

    async def reply(self, request: CounselingRequest, on_chunk: ChunkSink) -> str:
        """Stream the reply to `on_chunk` (coalesced), store the exchange, return the reply.

        Turns of one session run one at a time in the order requested, so each sees the
        exchanges before it. The chunks add up exactly to the stored `ai_response`.
        """
        turn = TurnClock(COUNSELING_PROTOCOL)
        try:
            text = await self._reply(request, on_chunk)
        except Exception:
            turn.failed()
            raise
        turn.done()
        return text

    async def _reply(self, request: CounselingRequest, on_chunk: ChunkSink) -> str:
        session_id = request.session_id
        async with self._turns.lane(session_id):
            log.info(
                "counseling request",
                extra={
                    "session": session_id,
                    "emotion": request.emotion,
                    "text": preview(request.message),
                },
            )
            flag = await self.safety.assess(
                request.message, protocol=COUNSELING_PROTOCOL, session_id=session_id
            )
            prompt = await self._prompt(request)
            llm = self.llm
            chunks = DeltaCoalescer(on_chunk, interval=self.delta_flush)
            result = await answer_within(
                llm,
                self.toolbox,
                prompt,
                chunks.add,
                timeout=self.ai_timeout,
                log_context={"session": session_id},
                safety=flag,
            )
            await chunks.flush()
            await self._store(request, result.text)
            log.info("counseling reply", extra={"session": session_id, "length": len(result.text)})
            return result.text

    async def _prompt(self, request: CounselingRequest) -> list[PromptMessage]:
        """The emotion's system prompt, the last exchanges as user/assistant pairs (oldest
        first), then the new message."""
        try:
            earlier = await self.store.recent(request.session_id, self.context_exchanges)
        except DB_UNAVAILABLE_ERRORS as exc:
            log.warning("database unavailable: %s", exc)
            raise ChatError(TEMPORARY_FAILURE) from exc
        prompt = [PromptMessage("system", system_prompt(request.emotion))]
        for exchange in earlier:
            prompt.append(PromptMessage("user", exchange.user_message))
            prompt.append(PromptMessage("assistant", exchange.ai_response))
        prompt.append(PromptMessage("user", request.message))
        return prompt

    async def _store(self, request: CounselingRequest, reply: str) -> None:
        """The reply has reached the client by now: an outage here costs only the history
        entry, so it is logged rather than turned into an error."""
        try:
            await self.store.add(
                request.session_id,
                request.message,
                reply,
                request.emotion,
                request.client_timestamp,
            )
        except DB_UNAVAILABLE_ERRORS as exc:
            log.warning(
                "counseling exchange not stored: database unavailable: %s",
                exc,
                extra={"session": request.session_id},
            )


async def forget_idle_limits(limiter: Limiter, interval: float = 60.0) -> None:
    """Session ids are the client's choice: drop the counters of quiet ones, forever."""
    while True:
        await asyncio.sleep(interval)
        limiter.forget_idle()
