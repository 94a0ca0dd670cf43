"""Test audio: an English sentence spoken by espeak-ng, or a plain tone without it.

espeak-ng's `en-us+klatt2` voice at 140 words a minute is one pocketsphinx's US English
model reliably hears "welfare services" in (most espeak voices it does not).
"""

from __future__ import annotations

import asyncio
import io
import shutil
import struct
import wave

import numpy as np

WELFARE_UTTERANCE = "hello I need help with welfare services"
WELFARE_KEYWORDS = ("welfare", "services")


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


async def spoken_wav(text: str = WELFARE_UTTERANCE) -> bytes:
    """`text` spoken in English by espeak-ng (22.05 kHz mono WAV)."""
    process = await asyncio.create_subprocess_exec(
        "espeak-ng", "-v", "en-us+klatt2", "-s", "140", "--stdout", text,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    wav, _ = await process.communicate()
    assert process.returncode == 0 and wav[:4] == b"RIFF"
    # espeak writing to a pipe leaves the sizes at 0x7FFFFFFF; Python's wave needs them right
    fixed = bytearray(wav)
    struct.pack_into("<I", fixed, 4, len(wav) - 8)
    struct.pack_into("<I", fixed, 40, len(wav) - 44)
    return bytes(fixed)


def tone_wav(seconds: float = 1.0, rate: int = 16000, hz: float = 440.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return pcm_wav((np.sin(2 * np.pi * hz * t) * 8000).astype("<i2").tobytes(), rate)


def silence_wav(seconds: float = 1.0, rate: int = 16000) -> bytes:
    return pcm_wav(b"\0\0" * int(seconds * rate), rate)


def pcm_wav(pcm: bytes, rate: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return out.getvalue()
