"""The AI's outgoing audio track: 20 ms frames at 48 kHz, silence whenever nothing plays.

aiortc's sender pulls `recv()` as fast as it returns, so the track paces itself on the
monotonic clock; pts grow by exactly one frame each time, also across silence, as RTP
timestamps must. Clips queued with `play` are played back to back.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av.audio.frame import AudioFrame

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms
FRAME_BYTES = FRAME_SAMPLES * 2  # s16 mono
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
# Later than this behind the clock (a stalled loop), the track stops catching up in a burst.
MAX_LAG_SECONDS = 0.2


@dataclass(eq=False)
class Clip:
    """Audio queued for playing; `on_start` runs when its first frame goes out."""

    pcm: bytes
    on_start: Callable[[float], None] | None = None
    finished: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    offset: int = 0


class SpeakerTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._clips: deque[Clip] = deque()
        self._start: float | None = None
        self._pts = 0

    def play(self, pcm: bytes, on_start: Callable[[float], None] | None = None) -> Clip:
        """Queue s16 mono 48 kHz PCM; await `clip.finished` to know it has been played."""
        clip = Clip(pcm[: len(pcm) - len(pcm) % 2], on_start)
        if self.readyState != "live":
            clip.finished.set_result(None)
            return clip
        self._clips.append(clip)
        return clip

    def clear(self) -> None:
        """Drop whatever is queued (the call ends)."""
        while self._clips:
            clip = self._clips.popleft()
            if not clip.finished.done():
                clip.finished.set_result(None)

    @property
    def playing(self) -> bool:
        return bool(self._clips)

    def stop(self) -> None:
        self.clear()
        super().stop()

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            self._pts += FRAME_SAMPLES
            due = self._start + self._pts / SAMPLE_RATE
            if due > now:
                await asyncio.sleep(due - now)
            elif now - due > MAX_LAG_SECONDS:
                self._start = now - self._pts / SAMPLE_RATE
        frame = AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(self._next_chunk())
        frame.sample_rate = SAMPLE_RATE
        frame.time_base = TIME_BASE
        frame.pts = self._pts
        return frame

    def _next_chunk(self) -> bytes:
        chunk = bytearray()
        while len(chunk) < FRAME_BYTES and self._clips:
            clip = self._clips[0]
            if clip.offset == 0 and clip.on_start is not None:
                clip.on_start(time.monotonic())
            take = clip.pcm[clip.offset : clip.offset + FRAME_BYTES - len(chunk)]
            chunk += take
            clip.offset += len(take)
            if clip.offset >= len(clip.pcm):
                self._clips.popleft()
                if not clip.finished.done():
                    clip.finished.set_result(None)
        return bytes(chunk) + bytes(FRAME_BYTES - len(chunk))
