"""The spoken conversation of a call: transcript in, reply out, both stored.

Transcripts and replies are `chat_messages` rows of the call's session with message_type
AUDIO and the call id in their metadata, so the model's context is the call's own history
(the last N turns, from the database: any instance can serve any call).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from models import ChatMessage, MessageType, Sender
from server.ai.base import LLM, PromptMessage
from server.calls.errors import NothingHeard
from server.calls.prompts import CALL_GREETING, PHONE_COUNSELOR_SYSTEM_PROMPT
from server.calls.sentences import SentenceSplitter
from server.calls.timing import ModelClock
from server.chat.history import HistoryStore, StoredMessage
from server.chat.service import conversation_order
from server.conversation.lanes import Lanes
from server.conversation.tools import Toolbox
from server.conversation.turn import answer_within
from server.logs import preview
from server.safety.layer import SafetyLayer
from server.safety.prompts import with_risk_guidance

log = logging.getLogger(__name__)

SentenceSink = Callable[[str], Awaitable[None]]
CALL_PROTOCOL = "/signaling"  # the label of metrics and safety alerts for calls
_ROLES = {"user": "user", "assistant": "assistant", "system": "system"}


class HeardReply(Protocol):
    """What the caller has heard of a reply (the voice pipeline keeps it up to date); its
    `message_id` is set once the reply is stored."""

    message_id: str | None

    @property
    def text(self) -> str: ...


class VoiceConversation:
    def __init__(
        self,
        *,
        llm: LLM,
        toolbox: Toolbox,
        history: HistoryStore,
        context_messages: int,
        ai_timeout_seconds: float,
        safety: SafetyLayer,
        system_prompt: str = PHONE_COUNSELOR_SYSTEM_PROMPT,
    ) -> None:
        self.safety = safety
        self.llm = llm
        self.toolbox = toolbox
        self.history = history
        self.context_messages = context_messages
        self.ai_timeout = ai_timeout_seconds
        self.system_prompt = system_prompt
        self._turns = Lanes()  # one call's utterances are answered one at a time, in order

    async def greet(self, session_id: str, call_id: str) -> str:
        """Store the greeting as the assistant's first words in the call; return its text."""
        await self.history.add(
            session_id,
            Sender.ASSISTANT,
            CALL_GREETING,
            message_type=MessageType.AUDIO,
            metadata={"callId": call_id},
        )
        return CALL_GREETING

    async def respond(
        self,
        session_id: str,
        call_id: str,
        transcript: str,
        on_sentence: SentenceSink | None = None,
        *,
        system_prompt: str | None = None,
        model_clock: ModelClock | None = None,
        reply: HeardReply | None = None,
        protocol: str = CALL_PROTOCOL,
    ) -> str:
        """Store the caller's words, answer them and store the answer; return its text.

        `on_sentence` gets each complete sentence while the model streams, so speech can
        start on the first one; keep it quick (queue the work). Its failures are logged and
        do not stop the reply. The model's failure is `ChatError(AI_FAILED)`; the transcript
        stays stored. `model_clock`, when given, records the time spent waiting on the model.
        Cancelled mid-way (the caller barged in), it stores what `reply` says was heard,
        with `metadata.interrupted`, before the cancellation goes on.
        """
        transcript = transcript.strip()
        if not transcript:
            raise NothingHeard()
        async with self._turns.lane(session_id):
            flag = await self.safety.assess(transcript, protocol=protocol, session_id=session_id)
            asked_metadata: dict[str, Any] = {"callId": call_id}
            if flag is not None:
                asked_metadata["safety"] = flag.as_metadata()
            asked = await self.history.add(
                session_id,
                Sender.USER,
                transcript,
                message_type=MessageType.AUDIO,
                metadata=asked_metadata,
            )
            log.info("caller said", extra={"call": call_id, "text": preview(transcript)})
            prompt = with_risk_guidance(system_prompt or self.system_prompt)
            context = await self._context(session_id, prompt)
            splitter = SentenceSplitter(first_clause=True)

            async def on_delta(delta: str) -> None:
                for sentence in splitter.feed(delta):
                    await _speak(on_sentence, sentence, call_id)

            llm = self.llm if model_clock is None else model_clock.timed(self.llm)
            try:
                result = await answer_within(
                    llm,
                    self.toolbox,
                    context,
                    on_delta,
                    timeout=self.ai_timeout,
                    log_context={"call": call_id},
                    safety=flag,
                )
            except asyncio.CancelledError:
                if reply is not None and reply.text:
                    stored = await self.history.add(
                        session_id,
                        Sender.ASSISTANT,
                        reply.text,
                        message_type=MessageType.AUDIO,
                        metadata={"callId": call_id, "replyTo": asked.id, "interrupted": True},
                    )
                    reply.message_id = stored.id
                raise
            if model_clock is not None:
                model_clock.done = time.monotonic()
            for sentence in splitter.flush():
                await _speak(on_sentence, sentence, call_id)
            metadata: dict[str, Any] = {"callId": call_id, "replyTo": asked.id}
            if result.tools_used:
                metadata["tools"] = result.tools_used
            if result.safety is not None:
                metadata["safety"] = result.safety.as_metadata()
            stored = await self.history.add(
                session_id,
                Sender.ASSISTANT,
                result.text,
                message_type=MessageType.AUDIO,
                metadata=metadata,
            )
            if reply is not None:
                reply.message_id = stored.id
            return result.text

    async def interrupted(self, session_id: str, message_id: str, spoken: str) -> None:
        """The caller barged in on a stored reply: keep only what they heard of it (nothing
        heard: the text stays), marked `metadata.interrupted`."""
        row = await ChatMessage.filter(id=message_id, session_id=session_id).first()
        if row is None:
            return
        row.metadata = {**(row.metadata or {}), "interrupted": True}
        row.content = spoken or row.content
        await row.save(update_fields=["content", "metadata"])
        self.history.cache.drop(session_id)

    async def _context(self, session_id: str, system_prompt: str) -> list[PromptMessage]:
        """The system prompt and the call's last N messages, the caller's newest last."""
        recent = await self.history.recent(session_id, self.context_messages)
        return [
            PromptMessage("system", system_prompt),
            *map(_as_prompt, conversation_order(recent)),
        ]


def _as_prompt(message: StoredMessage) -> PromptMessage:
    return PromptMessage(_ROLES.get(message.sender, "user"), message.content)  # type: ignore[arg-type]


async def _speak(sink: SentenceSink | None, sentence: str, call_id: str) -> None:
    if sink is None:
        return
    try:
        await sink(sentence)
    except Exception:
        log.exception("sentence sink failed", extra={"call": call_id})
