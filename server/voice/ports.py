"""What the voice pipeline needs from the rest of the server, as structural types.

The implementations live elsewhere (`server.ai.speech` for STT/TTS,
`server.calls.conversation.VoiceConversation` for the model turn and storage); keeping the
pipeline on these small shapes lets its tests run it on fakes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from server.ai.speech import FirstByte
from server.calls.timing import ModelClock

SentenceSink = Callable[[str], Awaitable[None]]
Emit = Callable[[str, dict[str, Any]], Awaitable[None]]  # (event, payload) to the caller


class Transcriber(Protocol):
    name: str

    async def transcribe(
        self, audio: bytes, *, filename: str = "audio.wav", prompt: str = ""
    ) -> str: ...


class Synthesizer(Protocol):
    name: str
    format: str  # the container `synthesize` returns: 'mp3', 'wav'

    async def synthesize(self, text: str, *, on_first_byte: FirstByte | None = None) -> bytes: ...


class HeardReply(Protocol):
    """A reply as the caller heard it (`speaker.Reply`)."""

    message_id: str | None

    @property
    def text(self) -> str: ...


class Conversation(Protocol):
    async def respond(
        self,
        session_id: str,
        call_id: str,
        transcript: str,
        on_sentence: SentenceSink | None = None,
        *,
        model_clock: ModelClock | None = None,
        reply: HeardReply | None = None,
        on_sentiment: Callable[[Any], None] | None = None,  # the caller's, once judged
    ) -> str: ...

    async def interrupted(self, session_id: str, message_id: str, spoken: str) -> None: ...

    async def greet(self, session_id: str, call_id: str) -> str: ...


class CallStates(Protocol):
    """The calls and their status machine (`server.calls.service.CallService`); lookups
    raise `CallNotFound`."""

    async def get(self, call_id: str) -> Any: ...

    async def by_session(self, session_id: str) -> Any: ...

    async def connect(self, call_id: str) -> Any: ...  # -> CONNECTING; idempotent

    async def media_flowing(self, call_id: str) -> Any: ...  # -> IN_PROGRESS; idempotent

    async def hang_up(self, call_id: str) -> Any: ...  # -> ENDED, or FAILED before media
