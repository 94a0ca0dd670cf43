"""STT while the caller talks: a segment at every pause, so that little is left at the end.

Every pause of an utterance (`turns.Pause`) sends the provider the audio since the previous
pause, not the utterance so far; the transcript at a pause is the segments' texts joined.
When the turn ends, its transcript is then the last segment's STT, started at the pause
while the end of the turn was being decided, usually done already. Each second of audio is
transcribed once, whatever the provider (the OpenAI models or Whisper offline, which decode
in time with the length of the audio). A segment starts where the last one was cut, inside
the pause, so no syllable falls between two.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from server.ai.audio import wav_bytes
from server.voice.ports import Transcriber
from server.voice.resample import RATE

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]]


class Transcription:
    """One call's STT. `at_pause` for each pause; `whole` when no pause covered the speech."""

    def __init__(self, stt: Transcriber, spawn: Spawn) -> None:
        self._stt = stt
        self._spawn = spawn
        self._utterance = -1  # the utterance the segments belong to
        self._segments: list[asyncio.Task[str | None]] = []
        self._cut = 0  # bytes of that utterance's PCM already sent

    def at_pause(self, utterance: int, pcm: bytes) -> asyncio.Task[str | None]:
        """The transcript of utterance number `utterance` up to its PCM so far, `pcm`
        (None if a segment failed): one more segment goes to the provider."""
        if utterance != self._utterance:
            self._utterance, self._segments, self._cut = utterance, [], 0
        segment, self._cut = pcm[self._cut :], len(pcm)
        self._segments.append(self._spawn(self.whole(segment, _words_so_far(self._segments))))
        return self._spawn(_joined(list(self._segments)))

    async def whole(self, pcm: bytes, prompt: str = "") -> str | None:
        """The words in `pcm` (16 kHz mono s16), `prompt` the words said just before it;
        None when STT failed."""
        try:
            audio = wav_bytes(pcm, RATE)
            return (
                await self._stt.transcribe(audio, filename="utterance.wav", prompt=prompt)
            ).strip()
        except Exception as exc:
            log.warning("speech to text failed: %s", exc)
            return None


def _words_so_far(segments: list[asyncio.Task[str | None]]) -> str:
    """The earlier segments' words, if all are in (a segment is not held back for them)."""
    if not all(s.done() and not s.cancelled() and s.result() is not None for s in segments):
        return ""
    return " ".join(text for s in segments if (text := s.result()))


async def _joined(segments: list[asyncio.Task[str | None]]) -> str | None:
    # shielded: the segments are shared by the later pauses' transcripts
    texts = [await asyncio.shield(segment) for segment in segments]
    if any(text is None for text in texts):
        return None
    return " ".join(text for text in texts if text)
