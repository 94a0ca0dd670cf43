"""Small audio helpers the speech providers and the voice pipeline share."""

from __future__ import annotations

import io
import struct
import wave

import av
import numpy as np

from server.ai.speech import SpeechError


def wav_bytes(pcm: bytes, sample_rate: int = 16000, channels: int = 1) -> bytes:
    """Signed 16-bit little-endian PCM wrapped as a WAV file (what STT providers take)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
    return out.getvalue()


def has_audio_stream(audio: bytes) -> bool:
    """Whether FFmpeg reads `audio` as a file with an audio stream (its header only, no
    decoding: cheap). CPU and I/O on a buffer: call it in a thread."""
    try:
        with av.open(io.BytesIO(audio), mode="r") as container:
            return bool(container.streams.audio)
    except (av.FFmpegError, ValueError, OSError):
        return False


def decode_to_pcm(audio: bytes, sample_rate: int = 16000) -> bytes:
    """Any audio file PyAV reads (wav, webm/opus, mp3, ogg) as mono s16 PCM at `sample_rate`.

    CPU-bound: call it in a thread.
    """
    resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
    chunks: list[bytes] = []
    try:
        with av.open(io.BytesIO(audio), mode="r") as container:
            if not container.streams.audio:
                raise SpeechError("no audio stream in the upload")
            for frame in container.decode(audio=0):
                chunks.extend(_pcm(f) for f in resampler.resample(frame))
            chunks.extend(_pcm(f) for f in resampler.resample(None))
    except (av.FFmpegError, ValueError) as exc:
        raise SpeechError(f"undecodable audio: {exc}") from exc
    return b"".join(chunks)


def _pcm(frame: av.AudioFrame) -> bytes:
    samples: np.ndarray = frame.to_ndarray()
    return samples.astype("<i2", copy=False).tobytes()


def fix_streamed_wav_sizes(wav: bytes) -> bytes:
    """A WAV written to a pipe (espeak-ng --stdout) cannot know its length and says
    0x7FFFFFFF; write the real RIFF and data sizes so every reader accepts it."""
    if len(wav) < 12 or wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise SpeechError("not a WAV file")
    fixed = bytearray(wav)
    struct.pack_into("<I", fixed, 4, len(wav) - 8)
    offset = 12
    while offset + 8 <= len(fixed):
        chunk_id = bytes(fixed[offset : offset + 4])
        (size,) = struct.unpack_from("<I", fixed, offset + 4)
        if chunk_id == b"data":
            struct.pack_into("<I", fixed, offset + 4, len(fixed) - offset - 8)
            return bytes(fixed)
        offset += 8 + size + (size & 1)
    raise SpeechError("WAV without a data chunk")


_SIGNATURES = (
    (b"RIFF", "wav"),
    (b"\x1aE\xdf\xa3", "webm"),
    (b"OggS", "ogg"),
    (b"ID3", "mp3"),
    (b"\xff\xfb", "mp3"),
    (b"\xff\xf3", "mp3"),
    (b"fLaC", "flac"),
)
KNOWN_EXTENSIONS = frozenset({"wav", "webm", "ogg", "oga", "mp3", "mpga", "m4a", "mp4", "flac"})


def upload_filename(given: str | None, audio: bytes) -> str:
    """A file name whose extension names the format: transcription APIs go by it. The
    client's own when it has a known extension, else one guessed from the first bytes."""
    if given and given.rsplit(".", 1)[-1].lower() in KNOWN_EXTENSIONS and "." in given:
        return given
    kind = next((k for magic, k in _SIGNATURES if audio.startswith(magic)), "webm")
    return f"audio.{kind}"
