"""Opus for the AI's outgoing track, encoded a clip at a time instead of a frame at a time.

Left to itself, aiortc encodes every 20 ms frame of every call in its thread pool (a thread
hop per frame) and measures the frame's loudness in pure Python on the event loop, silence
included: the largest share of the server's CPU per call (py-spy, 10 calls). Handing it
Opus packets instead skips both (aiortc only packetizes them): each TTS clip is encoded
once, as it is decoded (`server.voice.clips`), by the call's one encoder, and silence is
one constant packet.
"""

from __future__ import annotations

import fractions

import av
import numpy as np
from av.audio.frame import AudioFrame

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms
BITRATE = 48_000  # mono speech; aiortc's own encoder spends 96 kbit/s on stereo
# A CELT frame (fullband, 20 ms, mono) that decodes to 20 ms of digital silence: what
# WebRTC stacks send while muted.
SILENCE = b"\xf8\xff\xfe"
_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)


class StreamEncoder:
    """48 kHz mono s16 PCM, in pieces of whole 20 ms frames, as Opus packets of 20 ms: one
    continuous stream per call, clip after clip (the encoder keeps ~7 ms of lookahead).
    ~6 ms of CPU per second of audio, ~0.1 ms a frame."""

    def __init__(self) -> None:
        codec = av.CodecContext.create("libopus", "w")
        codec.bit_rate = BITRATE
        codec.format = "s16"
        codec.layout = "mono"
        codec.sample_rate = SAMPLE_RATE
        codec.time_base = _TIME_BASE
        codec.options = {"application": "voip"}
        self._codec = codec
        self._pts = 0

    @classmethod
    def opened(cls) -> StreamEncoder:
        """A new encoder with libopus already set up (a few ms: run it in a thread)."""
        encoder = cls()
        encoder.encode(bytes(FRAME_SAMPLES * 2))  # a silent frame: the first encode opens it
        return encoder

    def encode(self, pcm: bytes) -> list[bytes]:
        samples = np.frombuffer(pcm, dtype="<i2")
        packets: list[bytes] = []
        for start in range(0, len(samples) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
            frame = AudioFrame.from_ndarray(
                samples[start : start + FRAME_SAMPLES].reshape(1, -1), format="s16", layout="mono"
            )
            frame.sample_rate = SAMPLE_RATE
            frame.pts = self._pts
            frame.time_base = _TIME_BASE
            self._pts += FRAME_SAMPLES
            packets.extend(bytes(p) for p in self._codec.encode(frame))
        return packets


def is_opus(mime_type: str) -> bool:
    return mime_type.lower() == "audio/opus"
