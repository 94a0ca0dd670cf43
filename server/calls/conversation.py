"""The spoken conversation of a call: transcript in, reply out, both stored.

Transcripts and replies are `chat_messages` rows of the call's session with message_type
AUDIO and the call id in their metadata, so the model's context is the call's own history
(the last N turns: from the cache when one COUNT shows nobody else wrote to the session,
else from the database, so any instance can serve any call). Each transcript's
sentiment is judged while the model answers and added to its metadata (`sentiment`).
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
from server.calls.sentiment import Sentiment, SentimentAnalyzer
from server.calls.timing import ModelClock
from server.chat.history import HistoryStore, StoredMessage, new_message
from server.chat.service import conversation_order
from server.conversation.lanes import Lanes
from server.conversation.tools import Toolbox
from server.conversation.turn import answer_within
from server.logs import preview
from server.safety.layer import SafetyLayer
from server.safety.prompts import with_risk_guidance

log = logging.getLogger(__name__)

SentenceSink = Callable[[str], Awaitable[None]]
SentimentSink = Callable[[Sentiment], None]
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
        sentiment: SentimentAnalyzer | None = None,
    ) -> None:
        self.safety = safety
        self.sentiment = sentiment
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
        on_sentiment: SentimentSink | None = None,
    ) -> str:
        """Store the caller's words, answer them and store the answer; return its text.

        `on_sentence` gets each complete sentence while the model streams, so speech can
        start on the first one; keep it quick (queue the work). Its failures are logged and
        do not stop the reply. The model's failure is `ChatError(AI_FAILED)`; the transcript
        stays stored. `model_clock`, when given, records the time spent waiting on the model.
        Cancelled mid-way (the caller barged in), it stores what `reply` says was heard,
        with `metadata.interrupted`, before the cancellation goes on.
        `on_sentiment` gets the caller's sentiment as soon as it is judged (meanwhile the
        model answers); it is stored in the transcript's metadata either way.
        """
        transcript = transcript.strip()
        if not transcript:
            raise NothingHeard()
        async with self._turns.lane(session_id):
            flag = await self.safety.assess(transcript, protocol=protocol, session_id=session_id)
            asked_metadata: dict[str, Any] = {"callId": call_id}
            if flag is not None:
                asked_metadata["safety"] = flag.as_metadata()
            asked = new_message(
                session_id, Sender.USER, transcript, MessageType.AUDIO, asked_metadata
            )
            prompt = with_risk_guidance(system_prompt or self.system_prompt)
            # The context is read before the caller's words are stored; they are stored while
            # the model starts on them (its first token takes ~150 ms, the INSERT a few ms),
            # and before any of the answer is spoken: the write is off the path to the
            # first audio, not skipped.
            context = await self._context(session_id, prompt, asked)
            storing = asyncio.ensure_future(self.history.store(asked))
            log.info("caller said", extra={"call": call_id, "text": preview(transcript)})
            judging = self._judge(transcript, on_sentiment)
            try:
                splitter = SentenceSplitter(first_clause=True)

                async def on_delta(delta: str) -> None:
                    for sentence in splitter.feed(delta):
                        await asyncio.shield(storing)  # stored before it is answered
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
                    if await _settled(storing) and reply is not None and reply.text:
                        stored = await self.history.add(
                            session_id,
                            Sender.ASSISTANT,
                            reply.text,
                            message_type=MessageType.AUDIO,
                            metadata={"callId": call_id, "replyTo": asked.id, "interrupted": True},
                        )
                        reply.message_id = stored.id
                    raise
                except Exception:
                    await storing  # its failure is the one to tell; else the words stay stored
                    raise
                if model_clock is not None:
                    model_clock.done = time.monotonic()
                await storing
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
            finally:
                if await _settled(storing):
                    await self._store_sentiment(asked, judging)
                elif judging is not None:
                    judging.cancel()

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

    def _judge(
        self, transcript: str, on_sentiment: SentimentSink | None
    ) -> asyncio.Task[Sentiment] | None:
        """The transcript's sentiment, judged while the model answers (awaited by
        `_store_sentiment`, so never left behind)."""
        if self.sentiment is None:
            return None
        judging = asyncio.create_task(self.sentiment.analyze(transcript))
        if on_sentiment is not None:

            def tell(task: asyncio.Task[Sentiment]) -> None:
                if not task.cancelled() and task.exception() is None:
                    on_sentiment(task.result())

            judging.add_done_callback(tell)
        return judging

    async def _store_sentiment(
        self, asked: StoredMessage, judging: asyncio.Task[Sentiment] | None
    ) -> None:
        if judging is None:
            return
        try:
            judged = await judging
            await self.history.annotate(
                asked, {"sentiment": {"sentiment": judged.sentiment, "score": judged.score}}
            )
        except asyncio.CancelledError:
            judging.cancel()
            raise
        except Exception:  # the reply matters more than its label
            log.warning("sentiment not stored", exc_info=True)

    async def _context(
        self, session_id: str, system_prompt: str, asked: StoredMessage
    ) -> list[PromptMessage]:
        """The system prompt and the call's last N messages, ending with `asked` (the
        caller's words, not stored yet). The earlier ones come from the cache when nobody
        else has written to the session since (one COUNT), else from the database."""
        earlier = await self.history.context(session_id, self.context_messages - 1)
        return [
            PromptMessage("system", system_prompt),
            *map(_as_prompt, conversation_order([*earlier, asked])),
        ]


async def _settled(storing: asyncio.Future[StoredMessage]) -> bool:
    """Wait for the caller's words to be stored (even while cancelled); True if they are."""
    try:
        await asyncio.shield(storing)
    except Exception:  # a cancellation (BaseException) goes on through
        return False
    return True


def _as_prompt(message: StoredMessage) -> PromptMessage:
    return PromptMessage(_ROLES.get(message.sender, "user"), message.content)  # type: ignore[arg-type]


async def _speak(sink: SentenceSink | None, sentence: str, call_id: str) -> None:
    if sink is None:
        return
    try:
        await sink(sentence)
    except Exception:
        log.exception("sentence sink failed", extra={"call": call_id})
