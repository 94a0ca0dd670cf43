"""TTS audio -> the outgoing track's 20 ms units, streamed: a clip starts playing as soon as
its first 200 ms are decoded (and encoded), not once the whole sentence is.

A sentence of espeak-ng is 2-3 s of audio: decoding and encoding it whole took ~30 ms on an
idle machine and over 100 ms on a busy one, all of it between the TTS answer and the first
frame out. Here one thread decodes the clip frame by frame and hands units over as they are
ready: the first 200 ms at once, then every 400 ms, far ahead of playing (encoding runs
~150x faster than real time).
"""

from __future__ import annotations

import io
import wave
from collections.abc import Callable, Iterator

import av
import numpy as np

from server.ai.speech import SpeechError
from server.voice import opus
from server.voice.outbound import FRAME_BYTES, SAMPLE_RATE

FIRST_SECONDS = 0.2
THEN_EVERY_SECONDS = 0.4
_WAV_CHUNK = 2048  # samples read at a time
Deliver = Callable[[list[bytes]], None]


def units(audio: bytes, encoder: opus.StreamEncoder | None) -> Iterator[list[bytes]]:
    """Decode `audio` (wav, mp3, ... as PyAV reads it) to 48 kHz mono, as 20 ms units:
    Opus packets from `encoder` (the call's own, kept from clip to clip: opening one costs
    more than a sentence's first 200 ms), else PCM frames. One small batch per step of the
    decoder (~50-100 ms of audio, well under a millisecond of CPU)."""
    remainder = b""
    for pcm in _decoded(audio):
        remainder += pcm
        usable = len(remainder) - len(remainder) % FRAME_BYTES
        frames, remainder = remainder[:usable], remainder[usable:]
        batch = encoder.encode(frames) if encoder else _split(frames)
        if batch:
            yield batch
    remainder += bytes(-len(remainder) % FRAME_BYTES)
    if encoder:
        # one more frame of silence pushes the clip's end out of the encoder's lookahead
        yield encoder.encode(remainder + bytes(FRAME_BYTES))
    elif remainder:
        yield _split(remainder)


def stream_units(audio: bytes, encoder: opus.StreamEncoder | None, deliver: Deliver) -> None:
    """`units`, handed to `deliver` in bigger batches: the first 200 ms at once, then every
    400 ms. Blocking: run it in a thread; `deliver` must be thread-safe."""
    pending: list[bytes] = []
    delivered = 0
    for batch in units(audio, encoder):
        pending += batch
        due = FIRST_SECONDS if delivered == 0 else THEN_EVERY_SECONDS
        if len(pending) * 0.02 >= due:
            deliver(pending)
            delivered += len(pending)
            pending = []
    if pending:
        deliver(pending)


def _split(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]


def _decoded(audio: bytes) -> Iterator[bytes]:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    try:
        for frame in _wav_frames(audio) if audio[:4] == b"RIFF" else _demuxed(audio):
            yield b"".join(_samples(f) for f in resampler.resample(frame))
        yield b"".join(_samples(f) for f in resampler.resample(None))
    except (av.FFmpegError, ValueError, wave.Error, EOFError) as exc:
        raise SpeechError(f"undecodable speech: {exc}") from exc


def _demuxed(audio: bytes) -> Iterator[av.AudioFrame]:
    with av.open(io.BytesIO(audio), mode="r") as container:
        if not container.streams.audio:
            raise SpeechError("no audio stream in the synthesized speech")
        yield from container.decode(audio=0)


def _wav_frames(audio: bytes) -> Iterator[av.AudioFrame]:
    """PCM WAV (espeak-ng's) read directly: FFmpeg's demuxer takes 5-8 ms just to open one,
    longer than decoding the first 200 ms."""
    with wave.open(io.BytesIO(audio)) as wav:
        if wav.getsampwidth() != 2:
            raise SpeechError("only 16-bit WAV is spoken")
        layout = "mono" if wav.getnchannels() == 1 else "stereo"
        rate = wav.getframerate()
        while chunk := wav.readframes(_WAV_CHUNK):
            samples = np.frombuffer(chunk, dtype="<i2").reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout=layout)
            frame.sample_rate = rate
            yield frame


def _samples(frame: av.AudioFrame) -> bytes:
    return bytes(frame.planes[0])[: frame.samples * 2]  # s16 mono; the plane may be padded
