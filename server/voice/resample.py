"""Resample the caller's frames to 16 kHz mono s16, what the VAD and STT expect."""

from __future__ import annotations

import av
from av.audio.frame import AudioFrame

RATE = 16_000


class MonoResampler:
    """One per call: libswresample keeps filter state across frames (~13 us a frame)."""

    def __init__(self, rate: int = RATE) -> None:
        self.rate = rate
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)

    def __call__(self, frame: AudioFrame) -> bytes:
        # RTP timestamps jump after loss or a muted stretch; counting samples instead keeps
        # the resampler from padding or trimming to "catch up".
        frame.pts = None
        # the plane may be padded past its samples: take exactly those (s16 mono: 2 bytes)
        return b"".join(
            bytes(out.planes[0])[: out.samples * 2] for out in self._resampler.resample(frame)
        )
