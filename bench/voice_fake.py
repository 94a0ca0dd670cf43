"""The fake OpenAI server of `tests/support/fakes/` with fixed provider delays, for the voice bench.

Provider time is then known, so what is left of a turn is the server's own overhead:

    transcription   answers after `stt_ms`
    chat            the first token after `first_token_ms`, then the reply in small pieces
                    every `chunk_ms`: several sentences, streamed slowly, so the bench shows
                    speech starting on the first sentence, long before the reply is complete
    speech          the first audio byte after `tts_ms`, the rest of the clip right after

    .venv/bin/python -m bench.voice_fake [--port N]   # prints its base URL, serves
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web

from tests.support.fakes.openai_server import FakeOpenAI, tone_mp3, wav_seconds

# four sentences: the phone counselor's kind of answer
REPLY = (
    "네, 노인 복지 서비스를 찾으시는군요. "
    "가장 가까운 것은 기초연금으로, 만 65세 이상이면 신청하실 수 있습니다. "
    "주소지 주민센터나 국민연금공단 지사에서 접수합니다. "
    "더 궁금하신 점이 있으면 말씀해 주세요."
)
PIECE_CHARS = 6  # a token or two of Korean text


@dataclass
class BenchDelays:
    stt_ms: float = 100
    first_token_ms: float = 150
    chunk_ms: float = 40
    tts_ms: float = 80
    tts_seconds: float = 0.5  # the length of each spoken clip (a tone)

    def as_dict(self) -> dict[str, float]:
        return {
            "stt_ms": self.stt_ms,
            "first_token_ms": self.first_token_ms,
            "chunk_ms": self.chunk_ms,
            "tts_ms": self.tts_ms,
        }


class DelayedFakeOpenAI(FakeOpenAI):
    """Records nothing (a long run would pile up bodies); answers with fixed delays."""

    def __init__(self, delays: BenchDelays, transcripts: Sequence[tuple[float, str]] = ()) -> None:
        super().__init__(transcript="노인 복지 서비스 알려줘")
        self.delays = delays
        self.heard = list(transcripts)  # (seconds, words): the words of the nearest length

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await asyncio.sleep(self.delays.first_token_ms / 1000)
        base = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "gpt-4o"),
        }
        pieces = [REPLY[i : i + PIECE_CHARS] for i in range(0, len(REPLY), PIECE_CHARS)]
        try:
            for number, piece in enumerate(pieces):
                if number:
                    await asyncio.sleep(self.delays.chunk_ms / 1000)
                delta = {"role": "assistant", "content": piece}
                await _event(response, {**base, "choices": [_choice(delta, None)]})
            await _event(response, {**base, "choices": [_choice({}, "stop")]})
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionResetError:
            pass  # the caller barged in: the server cancelled the stream
        return response

    async def audio_transcriptions(self, request: web.Request) -> web.Response:
        text = self.transcript
        if self.heard:
            seconds = 0.0
            async for part in await request.multipart():
                if isinstance(part, BodyPartReader) and part.name == "file":
                    seconds = wav_seconds(bytes(await part.read()))
            text = min(self.heard, key=lambda heard: abs(heard[0] - seconds))[1]
        else:
            await request.read()
        await asyncio.sleep(self.delays.stt_ms / 1000)
        return web.json_response({"text": text})

    async def audio_speech(self, request: web.Request) -> web.StreamResponse:  # type: ignore[override]
        await request.read()
        audio = tone_mp3(self.delays.tts_seconds)
        response = web.StreamResponse(headers={"Content-Type": "audio/mpeg"})
        await response.prepare(request)
        await asyncio.sleep(self.delays.tts_ms / 1000)
        half = len(audio) // 2
        await response.write(audio[:half])
        await response.write(audio[half:])
        await response.write_eof()
        return response


def _choice(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "finish_reason": finish}


async def _event(response: web.StreamResponse, event: dict[str, Any]) -> None:
    await response.write(f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode())


def reply_sentences() -> int:
    return REPLY.count(". ") + 1


@asynccontextmanager
async def serving(
    delays: BenchDelays, port: int = 0, transcripts: Sequence[tuple[float, str]] = ()
) -> AsyncIterator[str]:
    """The fake on 127.0.0.1; yields its base URL (`http://127.0.0.1:PORT/v1`)."""
    fake = DelayedFakeOpenAI(delays, transcripts)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.chat_completions)
    app.router.add_post("/v1/audio/transcriptions", fake.audio_transcriptions)
    app.router.add_post("/v1/audio/speech", fake.audio_speech)
    runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


async def _serve_until_stopped(
    delays: BenchDelays, port: int, transcripts: Sequence[tuple[float, str]]
) -> None:
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    async with serving(delays, port, transcripts) as url:
        print(url, flush=True)
        await stopped.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--transcripts", default="[]", help="JSON [[seconds, words], ...]")
    defaults = BenchDelays()
    for name, value in defaults.as_dict().items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=value)
    args = parser.parse_args()
    delays = BenchDelays(
        stt_ms=args.stt_ms,
        first_token_ms=args.first_token_ms,
        chunk_ms=args.chunk_ms,
        tts_ms=args.tts_ms,
    )
    transcripts = [(float(s), str(w)) for s, w in json.loads(args.transcripts)]
    asyncio.run(_serve_until_stopped(delays, args.port, transcripts))


if __name__ == "__main__":
    main()
