"""Offline speech-to-text: Whisper (faster-whisper, the shipped *base* model), Korean by
default (`STT_LANGUAGE`).

Decoding runs in a worker process of its own (`stt_worker`), which loads the model once:
at start-up through `warm_up()` (the app does it in the background, so the first call does
not wait for it) or, failing that, at the first utterance. Utterances are decoded one at a
time, in order.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import sys
import time
from pathlib import Path

from server.ai.local.stt_worker import OK
from server.ai.speech import SpeechError
from server.config import ROOT
from server.metrics import PROVIDER_SECONDS

log = logging.getLogger(__name__)

_PIPE_ERRORS = (ConnectionError, asyncio.IncompleteReadError)
# who calls a welfare line, in their words: Whisper base hears espeak-ng's "노인 복지 서비스"
# as "노인폭시 서비스" without them, and right with them (docs/voice.md has the figures)
KOREAN_HOTWORDS = "노인 장애인 아동 임산부 청년 복지 서비스"


class WhisperSTT:
    name = "local"

    def __init__(
        self,
        *,
        model: str = "base",
        language: str | None = "ko",
        hotwords: str = "",
        cache_dir: Path = ROOT / "data" / "models",
        threads: int = 2,
    ) -> None:
        self.model = model
        self.language = language
        self.hotwords = hotwords
        self.cache_dir = cache_dir
        self.threads = threads
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()  # one request on the pipe at a time
        self._exchanges: set[asyncio.Task[tuple[int, str]]] = set()

    async def transcribe(
        self, audio: bytes, *, filename: str = "audio.wav", prompt: str = ""
    ) -> str:
        """`prompt` is not used: Whisper offline decodes each window on its own
        (`condition_on_previous_text=False`: a loop in one must not seed the next)."""
        # Shielded: a caller that gives up (a hang-up) must not leave a reply unread on the
        # pipe for the next caller; the exchange finishes either way.
        started = time.monotonic()
        exchange = asyncio.create_task(self._exchange(audio))
        self._exchanges.add(exchange)
        exchange.add_done_callback(self._exchanges.discard)
        status, text = await asyncio.shield(exchange)
        if status != OK:
            raise SpeechError(text)
        # waiting for the worker counts: it decodes one utterance at a time
        PROVIDER_SECONDS.labels(self.name, "stt").observe(time.monotonic() - started)
        return text

    async def warm_up(self) -> None:
        """Start the worker and load the model now rather than at the first utterance."""
        async with self._lock:
            await self._worker()

    async def aclose(self) -> None:
        await asyncio.gather(*self._exchanges, return_exceptions=True)
        async with self._lock:
            await self._stop()

    async def _exchange(self, audio: bytes) -> tuple[int, str]:
        async with self._lock:
            process = await self._worker()
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(struct.pack("<I", len(audio)) + audio)
                await process.stdin.drain()
                return await _read_reply(process.stdout)
            except _PIPE_ERRORS as exc:
                await self._stop()
                raise SpeechError("the offline recognizer stopped") from exc

    async def _worker(self) -> asyncio.subprocess.Process:
        if self._process is not None and self._process.returncode is None:
            return self._process
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server.ai.local.stt_worker",
            self.model,
            self.language or "",
            str(self.cache_dir),
            str(self.threads),
            self.hotwords,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self._process = process
        assert process.stdout is not None
        started = time.monotonic()
        try:
            status, text = await _read_reply(process.stdout)  # "ready": the model is loaded
        except _PIPE_ERRORS as exc:
            await self._stop()
            raise SpeechError("the offline recognizer is unavailable (see the log)") from exc
        if status != OK:
            log.error("offline recognizer failed to start: %s", text)
            await self._stop()
            raise SpeechError(text)
        log.info(
            "offline recognizer ready",
            extra={
                "pid": process.pid,
                "model": self.model,
                "seconds": round(time.monotonic() - started, 2),
            },
        )
        return process

    async def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()  # the worker exits at the end of its input
        try:
            await asyncio.wait_for(process.wait(), timeout=5)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _read_reply(stdout: asyncio.StreamReader) -> tuple[int, str]:
    status, size = struct.unpack("<BI", await stdout.readexactly(5))
    return status, (await stdout.readexactly(size)).decode("utf-8")
