"""Offline text-to-speech: the espeak-ng program (its Korean voice), WAV out.

The output is read whole (espeak-ng takes ~15 ms a sentence here), so its first byte is
counted when the whole clip is in.
"""

from __future__ import annotations

import asyncio
import shutil
import time

from server.ai.audio import fix_streamed_wav_sizes
from server.ai.local.spoken_numbers import speakable_numbers
from server.ai.speech import FirstByte, SpeechError
from server.metrics import PROVIDER_SECONDS

INSTALL_HINT = "espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)"


class EspeakTTS:
    name = "local"
    format = "wav"

    def __init__(self, voice: str = "ko", words_per_minute: int = 175) -> None:
        self.voice = voice
        self.words_per_minute = words_per_minute

    async def synthesize(self, text: str, *, on_first_byte: FirstByte | None = None) -> bytes:
        if not text.strip():
            raise SpeechError("nothing to say")
        program = shutil.which("espeak-ng")
        if program is None:
            raise SpeechError(INSTALL_HINT)
        started = time.monotonic()
        if self.voice == "ko":  # phone numbers and hotlines digit by digit, as people say them
            text = speakable_numbers(text)
        # the text goes in on stdin: as an argument, a reply starting with '-' is an option
        process = await asyncio.create_subprocess_exec(
            program,
            "-v",
            self.voice,
            "-s",
            str(self.words_per_minute),
            "--stdout",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            wav, errors = await process.communicate(text.encode("utf-8"))
        except BaseException:  # cancelled (a hang-up): leave no process or pipe behind
            await _discard(process)
            raise
        if process.returncode != 0 or not wav:
            detail = errors.decode("utf-8", "replace").strip()[:200]
            raise SpeechError(f"espeak-ng failed ({process.returncode}): {detail}")
        PROVIDER_SECONDS.labels(self.name, "tts_first_byte").observe(time.monotonic() - started)
        if on_first_byte is not None:
            on_first_byte()
        return fix_streamed_wav_sizes(wav)


async def _discard(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
    if process.stdin is not None:
        process.stdin.close()
    # read to the end: a pipe paused on a full buffer would otherwise stay open
    readers = [r.read() for r in (process.stdout, process.stderr) if r is not None]
    await asyncio.gather(*readers, return_exceptions=True)
    await process.wait()
