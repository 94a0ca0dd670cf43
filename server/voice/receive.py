"""How the AI peer takes in the caller's audio: aiortc's receiver, with two changes.

aiortc is built to play what it receives: it holds each frame until 4 more have arrived
(80 ms of cushion against jitter) and decodes in a thread of its own. The AI peer only
listens (VAD and STT take frames as they come), so:

- no cushion: a frame is decoded as soon as the next one arrives (20 ms). That is 60 ms
  less at the end of every utterance. A missing frame still holds the ones after it until
  it arrives or the buffer overflows, as before.
- decoding on the event loop, as each frame completes: 20 ms of Opus decodes in ~25 us,
  while handing every frame to a decoder thread and back cost ~140 us of GIL time a frame
  (the voice bench's py-spy profile, 10 calls): the handoff, not the decoding, was the
  largest single cost of a call.

Both reach into aiortc's private attributes (aiortc 1.x); if they move, the receiver is
left as aiortc made it (slower, still correct), and `tune_receiver` logs it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import av
from aiortc.codecs import get_decoder
from aiortc.jitterbuffer import JitterBuffer

log = logging.getLogger(__name__)

_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"


def tune_receiver(receiver: Any, frames: asyncio.Queue[Any]) -> bool:
    """Tune an audio `receiver` whose track reads `frames`, before media flows (on the
    peer's `track` event). True when both changes took."""
    buffer = getattr(receiver, _JITTER_BUFFER, None)
    queue = getattr(receiver, _DECODER_QUEUE, None)
    if not isinstance(buffer, JitterBuffer) or queue is None or not hasattr(queue, "put"):
        log.warning("aiortc's receiver has changed: caller audio decoded the slow way")
        return False
    setattr(receiver, _JITTER_BUFFER, JitterBuffer(capacity=buffer.capacity, prefetch=0))
    setattr(receiver, _DECODER_QUEUE, InlineDecoder(frames))
    return True


class InlineDecoder:
    """Stands in for the receiver's decoder queue: `put` (on the event loop, one complete
    encoded frame at a time) decodes at once and hands the frames to the track. aiortc
    still starts its decoder thread on this object; `get` keeps that thread parked until
    the receiver stops (`put(None)`), and it then ends the track itself, as it always did."""

    def __init__(self, frames: asyncio.Queue[Any]) -> None:
        self._frames = frames
        self._decoder: Any = None
        self._codec_name: str | None = None
        self._stopped = threading.Event()

    def put(self, item: tuple[Any, Any] | None) -> None:
        if item is None:
            self._stopped.set()
            return
        codec, encoded_frame = item
        if codec.name != self._codec_name:
            self._decoder = get_decoder(codec)
            self._codec_name = codec.name
        try:
            decoded = self._decoder.decode(encoded_frame)
        except av.FFmpegError as exc:
            # keep the decoder: a reset would fail every frame until the next keyframe
            log.warning("caller audio frame undecodable: %s", exc)
            return
        for frame in decoded:
            self._frames.put_nowait(frame)

    def get(self) -> None:
        """aiortc's decoder thread waits here; None tells it to end the track."""
        self._stopped.wait()
