"""Text the AI says -> TTS -> the outgoing track and an `ai-audio-response` event.

Lines are spoken one at a time, in the order they were queued: the model streams sentence
by sentence, and the first sentence plays while the next ones are still being written and
synthesized. `interrupt` (barge-in) silences the track at once, drops the queued lines and
cancels the synthesis in progress; each line's `Reply` knows which sentences were heard.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from server.chat import clock
from server.voice.clips import units
from server.voice.latency import TurnTimings
from server.voice.opus import StreamEncoder
from server.voice.outbound import SpeakerTrack
from server.voice.ports import Emit, Synthesizer

log = logging.getLogger(__name__)

SYNTHESIS_GRACE_SECONDS = 2.0


@dataclass(eq=False, slots=True)
class Reply:
    """One reply as the caller heard it: the sentences whose audio started playing, and the
    stored message once there is one (`VoiceConversation.respond` sets it)."""

    spoken: list[str] = field(default_factory=list)
    message_id: str | None = None

    @property
    def text(self) -> str:
        return " ".join(self.spoken)


@dataclass(frozen=True, slots=True)
class Line:
    text: str
    transcript: str | None = None  # what the caller said, for replies
    timings: TurnTimings | None = None  # set on the first line of a reply
    reply: Reply | None = None  # the reply it belongs to
    sentiment: dict[str, Any] | None = None  # of what the caller said, once judged


class Speaker:
    def __init__(
        self,
        tts: Synthesizer,
        track: SpeakerTrack,
        emit: Emit,
        on_error: Callable[[BaseException], Awaitable[None]],
    ) -> None:
        self._tts = tts
        self._track = track
        self._emit = emit
        self._on_error = on_error
        self._lines: asyncio.Queue[Line] = asyncio.Queue()
        self._synthesis: asyncio.Future[bytes] | None = None
        self._current: asyncio.Task[None] | None = None  # the line being spoken
        self._encoder: StreamEncoder | None = None  # Opus, once a clip needs it
        self._task = asyncio.create_task(self._run())

    def say(self, line: Line) -> None:
        if line.text.strip():
            self._lines.put_nowait(line)

    @property
    def busy(self) -> bool:
        """Speaking, or about to: a line queued, synthesized, or audio on the track."""
        speaking = self._current is not None and not self._current.done()
        return speaking or not self._lines.empty() or self._track.playing

    def interrupt(self) -> None:
        """Stop talking now: silence on the track from its next frame, queued lines
        dropped, the synthesis in progress cancelled."""
        self._track.clear()
        while not self._lines.empty():
            self._lines.get_nowait()
            self._lines.task_done()
        if self._current is not None:
            self._current.cancel()
        if self._synthesis is not None:
            self._synthesis.cancel()

    async def finished(self) -> None:
        """Every queued line has been synthesized and queued on the track."""
        await self._lines.join()

    async def close(self) -> None:
        self._task.cancel()
        if self._current is not None:
            self._current.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        # A synthesis cut off mid-way can leave its subprocess (espeak-ng) and pipes behind:
        # let it finish briefly, cancel it only if it hangs.
        if self._synthesis is not None and not self._synthesis.done():
            await asyncio.wait({self._synthesis}, timeout=SYNTHESIS_GRACE_SECONDS)
            self._synthesis.cancel()
            await asyncio.gather(self._synthesis, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            line = await self._lines.get()
            self._current = current = asyncio.create_task(self._speak(line))
            try:
                await asyncio.wait({current})
                if not current.cancelled() and (exc := current.exception()) is not None:
                    # one sentence that fails to synthesize must not silence the rest
                    await self._on_error(exc)
            finally:
                self._lines.task_done()

    async def _speak(self, line: Line) -> None:
        timings = line.timings
        first_byte = None
        if timings is not None:

            def first_byte() -> None:
                timings.mark("tts_first_byte", time.monotonic())

        started = time.monotonic()
        self._synthesis = asyncio.ensure_future(
            self._tts.synthesize(line.text, on_first_byte=first_byte)
        )
        audio = await asyncio.shield(self._synthesis)
        if timings is not None:
            timings.synthesized(started, time.monotonic())
        encoder = None
        if self._track.send_opus:
            if self._encoder is None:  # once a call, off the loop: setting up libopus
                self._encoder = await asyncio.to_thread(StreamEncoder.opened)
            encoder = self._encoder

        def on_audio(at: float) -> None:
            if timings is not None:
                timings.audio_out(at)
            if line.reply is not None:
                line.reply.spoken.append(line.text)

        # played while it is decoded: speech starts once its first units are ready
        clip = self._track.open_clip(on_start=on_audio)
        try:
            for batch, levels in units(audio, encoder):
                clip.add(batch, levels)
                await asyncio.sleep(0)  # a step is <1 ms of CPU: other calls' audio goes on
        finally:
            clip.close()
        payload = {
            "audioData": base64.b64encode(audio).decode("ascii"),
            "timestamp": clock.to_ms(clock.now()),
            "format": self._tts.format,
            "text": line.text,
        }
        if line.transcript is not None:
            payload["transcript"] = line.transcript
        if line.sentiment is not None:
            payload["sentiment"] = line.sentiment
        await self._emit("ai-audio-response", payload)
