"""A local stand-in for the OpenAI HTTP API, speaking its real wire format.

`POST /v1/chat/completions` streams `chat.completion.chunk` server-sent events (or answers a
plain completion). With tools offered and a user message last, it calls
`search_welfare_services` (its arguments split across chunks, as OpenAI does); with a tool
result last, it answers from that result. Every request body is kept for assertions.
Faults on demand: `fail_status` (an HTTP error), `hang` (no answer at all), `stall` (a stream
that stops after its first events), `stream_error` / `malformed_chunk` (an error event or a
chunk that is not JSON after the first events), `delay` (a slow model); off by default.
Streams open with an SSE comment line, as proxies and compatible servers send.

Speech: `POST /v1/audio/transcriptions` (multipart, answers `{"text": fake.transcript}`) and
`POST /v1/audio/speech` (answers a short MP3 tone, or `fake.speech_audio` when set: real
speech, which the VAD hears), each recorded and each able to fail. A
sentiment-classifier prompt gets `fake.sentiment_reply`.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import time
import wave
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from aiohttp import BodyPartReader, web


@dataclass
class FakeOpenAI:
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_status: int | None = None  # answer every request with this HTTP status
    hang: bool = False  # never answer
    stall: bool = False  # start streaming a reply, then never finish it
    delay: float = 0.0
    piece_delay: float = 0.0  # between the streamed pieces of a reply's text (a slow model)
    stream_error: bool = False  # an `error` event in the middle of a streamed reply
    malformed_chunk: bool = False  # a chunk that is not JSON in the middle of a reply
    url: str = ""
    # speech
    transcript: str = "노인 복지 서비스 알려줘"
    # or the words by the length of the audio sent, in seconds (a WAV): a caller's pause
    # cuts an utterance in segments, each transcribed on its own
    transcript_for: Callable[[float], str] | None = None
    transcriptions: list[dict[str, Any]] = field(default_factory=list)  # model, file, ...
    speeches: list[dict[str, Any]] = field(default_factory=list)  # the JSON bodies
    fail_transcription: int | None = None  # answer transcriptions with this HTTP status
    fail_speech: int | None = None  # answer speech requests with this HTTP status
    speech_audio: bytes | None = None  # what speech requests get instead of the tone (WAV)
    sentiment_reply: str = '{"sentiment": "positive", "score": 0.9}'

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        if self.hang:
            await asyncio.sleep(3600)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_status is not None:
            return web.json_response(
                {"error": {"message": "fake failure", "type": "server_error"}},
                status=self.fail_status,
            )
        messages = body["messages"]
        last = messages[-1]
        if "sentiment classifier" in str(messages[0].get("content", "")):
            return await self._stream(request, body, text=self.sentiment_reply)
        if body.get("tools") and last["role"] == "user":
            arguments = json.dumps({"query": last["content"], "limit": 3}, ensure_ascii=False)
            return await self._stream(request, body, tool_arguments=arguments)
        if last["role"] == "tool":
            services = json.loads(last["content"])
            lines = [
                f"{i}. {s['name']}\n    - 담당: {s['department']}\n    - 연락처: {s['contact']}"
                for i, s in enumerate(services, 1)
            ]
            text = "검색 결과입니다.\n\n" + "\n\n".join(lines)
        else:
            text = f"답변: {last['content']}"
        return await self._stream(request, body, text=text)

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        *,
        text: str = "",
        tool_arguments: str | None = None,
    ) -> web.StreamResponse:
        model = body.get("model", "gpt-4o")
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        chunks: list[dict[str, Any]] = []
        if tool_arguments is not None:
            half = len(tool_arguments) // 2
            chunks.append(
                {
                    "index": 0,
                    "id": "call_fake1",
                    "type": "function",
                    "function": {
                        "name": "search_welfare_services",
                        "arguments": tool_arguments[:half],
                    },
                }
            )
            chunks.append({"index": 0, "function": {"arguments": tool_arguments[half:]}})
            deltas: list[dict[str, Any]] = [
                {"role": "assistant", "tool_calls": [c]} for c in chunks
            ]
            finish = "tool_calls"
        else:
            pieces = [text[i : i + 7] for i in range(0, len(text), 7)]
            deltas = [{"role": "assistant", "content": ""}] + [{"content": p} for p in pieces]
            finish = "stop"
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            return web.json_response(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b": keep-alive\n\n")
        stall_at = min(2, len(deltas) - 1) if self.stall else None  # before the reply is whole
        for index, delta in enumerate(deltas):
            if index == stall_at:
                await asyncio.sleep(3600)
            if index == 1 and self.stream_error:
                error = {"error": {"message": "fake overload", "type": "server_error"}}
                await response.write(f"data: {json.dumps(error)}\n\n".encode())
            if index == 1 and self.malformed_chunk:
                await response.write(b'data: {"choices": [{"delta": \n\n')
            if index > 1 and self.piece_delay:
                await asyncio.sleep(self.piece_delay)
            event = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            await response.write(f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode())
        final = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
        await response.write(f"data: {json.dumps(final)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def audio_transcriptions(self, request: web.Request) -> web.Response:
        record: dict[str, Any] = {}
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            assert isinstance(part, BodyPartReader)
            data = await part.read(decode=True)
            if part.name == "file":
                record["file"] = bytes(data)
                record["filename"] = part.filename
            elif part.name is not None:
                record[part.name] = data.decode()
        self.transcriptions.append(record)
        if self.fail_transcription is not None:
            return _failure(self.fail_transcription)
        text = self.transcript
        if self.transcript_for is not None:
            text = self.transcript_for(wav_seconds(record.get("file", b"")))
        return web.json_response({"text": text})

    async def audio_speech(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.speeches.append(body)
        if self.fail_speech is not None:
            return _failure(self.fail_speech)
        if self.speech_audio is not None:
            return web.Response(body=self.speech_audio, content_type="audio/wav")
        return web.Response(body=tone_mp3(), content_type="audio/mpeg")


def wav_seconds(data: bytes) -> float:
    """The length of a WAV file, in seconds; 0 for anything else."""
    try:
        with wave.open(io.BytesIO(data)) as wav:
            return wav.getnframes() / wav.getframerate()
    except (wave.Error, EOFError):
        return 0.0


def _failure(status: int) -> web.Response:
    return web.json_response(
        {"error": {"message": "fake failure", "type": "server_error"}}, status=status
    )


@functools.cache
def tone_mp3(seconds: float = 0.5, rate: int = 24000, hz: float = 440.0) -> bytes:
    """A short sine tone, MP3-encoded: what the fake `audio/speech` says."""
    out = io.BytesIO()
    with av.open(out, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
        t = np.arange(int(seconds * rate)) / rate
        pcm = (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return out.getvalue()


@asynccontextmanager
async def running_fake_openai() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.chat_completions)
    app.router.add_post("/v1/audio/transcriptions", fake.audio_transcriptions)
    app.router.add_post("/v1/audio/speech", fake.audio_speech)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    try:
        yield fake
    finally:
        await runner.cleanup()
