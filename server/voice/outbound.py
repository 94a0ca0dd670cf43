"""The AI's outgoing audio track: one 20 ms unit every 20 ms, silence whenever nothing plays.

aiortc's sender pulls `recv()` as fast as it returns, so the track paces itself on the
monotonic clock; pts grow by exactly one frame each time, also across silence, as RTP
timestamps must. Clips queued with `play` are played back to back.

Once the call has negotiated Opus (`send_opus`), clips come encoded (`open_clip`, filled by
`server.voice.clips`) and the track hands aiortc Opus packets, silence included, which it
only packetizes; a clip of PCM (`play`) is still sent as frames for aiortc to encode.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av.audio.frame import AudioFrame
from av.packet import Packet

from server.metrics import VOICE_LATE_FRAMES
from server.voice import opus
from server.voice.echo import SILENT_DB, SentLevels, unit_levels

log = logging.getLogger(__name__)

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms
FRAME_BYTES = FRAME_SAMPLES * 2  # s16 mono
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
# Later than this behind the clock (a stalled loop), the track stops catching up in a burst.
MAX_LAG_SECONDS = 0.2
# A unit this late has left a receiver that holds 60 ms of audio (3 frames) with nothing to
# play: the caller hears a gap. The voice bench's "underrun".
GAP_SECONDS = 0.06
_SILENT_FRAME = bytes(FRAME_BYTES)
_LATE, _GAP, _RESYNC = (VOICE_LATE_FRAMES.labels(k) for k in ("late", "gap", "resync"))


@dataclass(slots=True)
class Pacing:
    """How punctually the track handed out its units (to aiortc, which sends each at once):
    one handed out more than a frame period (20 ms) after its slot is late, more than
    GAP_SECONDS a gap; a resync is a lag past MAX_LAG_SECONDS, after which the clock
    restarts."""

    frames: int = 0
    late: int = 0
    gaps: int = 0
    resyncs: int = 0
    starved: int = 0  # silence inside a clip whose next units had not been decoded yet
    max_lag: float = 0.0  # seconds

    def as_log(self) -> dict[str, float | int]:
        return {
            "frames": self.frames,
            "lateFrames": self.late,
            "gapFrames": self.gaps,
            "resyncs": self.resyncs,
            "starvedFrames": self.starved,
            "maxLagMs": round(self.max_lag * 1000, 1),
        }


@dataclass(eq=False)
class Clip:
    """Audio queued for playing, as 20 ms units (PCM frames, or Opus packets when
    `encoded`) and the level of each (dBFS, for the echo guard); `on_start` runs when its
    first unit goes out. A clip opened with `open_clip` gets its units as they are decoded
    (`add`) until `close`."""

    units: list[bytes]
    levels: list[float]
    encoded: bool = False
    on_start: Callable[[float], None] | None = None
    finished: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    played: int = 0
    complete: bool = True

    def add(self, units: Sequence[bytes], levels: Sequence[float]) -> None:
        if len(levels) != len(units):  # here, rather than in `recv`, where it would end the track
            raise ValueError(f"{len(units)} units with {len(levels)} levels")
        self.units.extend(units)
        self.levels.extend(levels)

    def close(self) -> None:
        self.complete = True
        if not self.units and not self.finished.done():
            self.finished.set_result(None)  # nothing came: the track skips it


class SpeakerTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._clips: deque[Clip] = deque()
        self._start: float | None = None
        self._pts = 0
        self.send_opus = False  # the peer sets it once Opus is the negotiated codec
        self.held = False  # silence for now, the queue kept (the caller may be barging in)
        self.pacing = Pacing()
        self.sent = SentLevels()  # what went out while clips played (`server.voice.echo`)

    def play(self, pcm: bytes, on_start: Callable[[float], None] | None = None) -> Clip:
        """Queue s16 mono 48 kHz PCM; await `clip.finished` to know it has been played."""
        pcm += bytes(-len(pcm) % FRAME_BYTES)
        frames = [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]
        return self._queue(Clip(frames, unit_levels(pcm, FRAME_SAMPLES), False, on_start))

    def open_clip(self, on_start: Callable[[float], None] | None = None) -> Clip:
        """Queue a clip whose units come later (`clip.add`, then `clip.close`): Opus packets
        when `send_opus`, else PCM frames of 20 ms."""
        return self._queue(Clip([], [], self.send_opus, on_start, complete=False))

    def _queue(self, clip: Clip) -> Clip:
        if self.readyState != "live" or (clip.complete and not clip.units):
            clip.finished.set_result(None)
            return clip
        self._clips.append(clip)
        return clip

    def hold(self) -> None:
        """Send silence from the next frame on, keeping the queue where it is."""
        self.held = True

    def resume(self) -> None:
        self.held = False

    def clear(self) -> None:
        """Drop whatever is queued (the call ends, the caller barged in)."""
        self.held = False
        while self._clips:
            self._done(self._clips.popleft())

    def _done(self, clip: Clip) -> None:
        if not clip.finished.done():
            clip.finished.set_result(None)

    @property
    def playing(self) -> bool:
        return bool(self._clips)

    def stop(self) -> None:
        self.clear()
        super().stop()

    async def recv(self) -> AudioFrame | Packet:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        now = await self._wait_for_slot()
        unit, encoded = self._next_unit(now)
        if encoded:
            packet = Packet(unit)
            packet.pts = self._pts
            packet.time_base = TIME_BASE
            return packet
        frame = AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(unit)
        frame.sample_rate = SAMPLE_RATE
        frame.time_base = TIME_BASE
        frame.pts = self._pts
        return frame

    async def _wait_for_slot(self) -> float:
        """Wait for the next unit's slot; returns the time it goes out."""
        now = time.monotonic()
        pacing = self.pacing
        pacing.frames += 1
        if self._start is None:
            self._start = now
            return now
        self._pts += FRAME_SAMPLES
        due = self._start + self._pts / SAMPLE_RATE
        if due > now:
            await asyncio.sleep(due - now)
            now = time.monotonic()  # a busy loop wakes the track up late too
        lag = now - due
        pacing.max_lag = max(pacing.max_lag, lag)
        if lag <= FRAME_SECONDS:
            return now  # on time (the usual case: nothing to count)
        pacing.late += 1
        _LATE.inc()
        if lag > GAP_SECONDS:
            pacing.gaps += 1
            _GAP.inc()
        if lag > MAX_LAG_SECONDS:
            pacing.resyncs += 1
            _RESYNC.inc()
            self._start = now - self._pts / SAMPLE_RATE
            log.warning("outgoing audio stalled", extra={"lagMs": round(lag * 1000)})
        return now

    def _next_unit(self, now: float) -> tuple[bytes, bool]:
        while self._clips and not self.held:
            clip = self._clips[0]
            if clip.played < len(clip.units):
                if clip.played == 0 and clip.on_start is not None:
                    clip.on_start(now)
                unit = clip.units[clip.played]
                self.sent.record(now, clip.levels[clip.played])
                clip.played += 1
                if clip.complete and clip.played >= len(clip.units):
                    self._done(self._clips.popleft())
                return unit, clip.encoded
            if not clip.complete:
                if clip.played:
                    self.pacing.starved += 1
                break  # its next units are still being decoded: silence meanwhile
            self._done(self._clips.popleft())
        if self._clips:  # held, or starved: the AI is still talking, silence goes out
            self.sent.record(now, SILENT_DB)
        return (opus.SILENCE, True) if self.send_opus else (_SILENT_FRAME, False)
