"""Offline speech-to-text: pocketsphinx with its bundled US English model.

English only: pocketsphinx ships no Korean model. Good enough to prove the pipeline offline
and for English keywords; real calls want the `openai` provider (whisper).

Decoding runs in a worker process of its own (`sphinx_worker`: pocketsphinx holds the GIL
and would stall the event loop), started at the first utterance or by `warm_up()`.
Utterances are decoded one at a time, in order.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import sys
import time

from server.ai.local.sphinx_worker import OK
from server.ai.speech import SpeechError
from server.config import ROOT
from server.metrics import PROVIDER_SECONDS

log = logging.getLogger(__name__)

_PIPE_ERRORS = (ConnectionError, asyncio.IncompleteReadError)


class PocketsphinxSTT:
    name = "local"

    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()  # one request on the pipe at a time
        self._exchanges: set[asyncio.Task[tuple[int, str]]] = set()

    async def transcribe(self, audio: bytes, *, filename: str = "audio.wav") -> str:
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
            "server.ai.local.sphinx_worker",
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self._process = process
        assert process.stdout is not None
        try:
            await _read_reply(process.stdout)  # "ready": the model is loaded
        except _PIPE_ERRORS as exc:
            await self._stop()
            raise SpeechError("pocketsphinx is unavailable (see the log)") from exc
        log.info("offline recognizer ready", extra={"pid": process.pid})
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
