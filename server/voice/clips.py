"""TTS audio -> the outgoing track's 20 ms units, as it is decoded: a clip starts playing
once its first units are ready, not once the whole sentence is decoded and encoded.

A sentence of espeak-ng is 2-3 s of audio: decoding and encoding it whole took ~30 ms on an
idle machine and over 100 ms on a busy one, all of it between the TTS answer and the first
frame out. `units` yields a batch per step of the decoder (~50 ms of audio, well under a
millisecond of CPU), and the speaker hands each batch to the track and lets the event loop
run between steps. On the loop rather than in a thread, because a thread doing this work
holds the GIL in turns of up to 5 ms (the interpreter's switch interval) while every call's
outgoing frames wait on the loop; steps this small keep the loop's waits under a
millisecond. (On the shared bench machine the difference was within its noise at 30 calls:
the reason is the mechanism, not a measurement.)
"""

from __future__ import annotations

import io
import wave
from collections.abc import Iterator

import av
import numpy as np

from server.ai.speech import SpeechError
from server.voice import opus
from server.voice.echo import SILENT_DB, unit_levels
from server.voice.outbound import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE

_WAV_CHUNK = 1024  # samples read at a time: ~46 ms of espeak-ng's 22.05 kHz


Batch = tuple[list[bytes], list[float]]  # 20 ms units, and the level of each (dBFS)


def units(audio: bytes, encoder: opus.StreamEncoder | None) -> Iterator[Batch]:
    """Decode `audio` (wav, mp3, ... as PyAV reads it) to 48 kHz mono, as 20 ms units:
    Opus packets from `encoder` (the call's own, kept from clip to clip), else PCM frames,
    each with its level for the echo guard. One small batch per step of the decoder (~50 ms
    of audio)."""
    remainder = b""
    for pcm in _decoded(audio):
        remainder += pcm
        usable = len(remainder) - len(remainder) % FRAME_BYTES
        frames, remainder = remainder[:usable], remainder[usable:]
        batch = _units(frames, encoder)
        if batch[0]:
            yield batch
    remainder += bytes(-len(remainder) % FRAME_BYTES)
    if encoder:
        # one more frame of silence pushes the clip's end out of the encoder's lookahead
        yield _units(remainder + bytes(FRAME_BYTES), encoder)
    elif remainder:
        yield _units(remainder, None)


def _units(frames: bytes, encoder: opus.StreamEncoder | None) -> Batch:
    """Whole 20 ms frames -> units and their levels. The encoder's lookahead delays its
    packets by a frame or so; the levels stay on the frames (a 20 ms misalignment, well
    inside the echo guard's window)."""
    batch = encoder.encode(frames) if encoder else _split(frames)
    levels = unit_levels(frames, FRAME_SAMPLES)
    return batch, _fit(levels, len(batch))


def _fit(levels: list[float], count: int) -> list[float]:
    """As many levels as units: the encoder may hold a frame back, or release one more."""
    if len(levels) >= count:
        return levels[:count]
    return levels + [levels[-1] if levels else SILENT_DB] * (count - len(levels))


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
