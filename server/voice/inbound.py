"""The caller's audio: frames read from the remote track until it ends."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av.audio.frame import AudioFrame


async def audio_frames(track: MediaStreamTrack) -> AsyncIterator[AudioFrame]:
    """Decoded frames (48 kHz stereo s16 from aiortc's Opus decoder, decoded in its own
    thread) until the caller hangs up or the peer closes."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if isinstance(frame, AudioFrame):
            yield frame
