"""STT while the caller talks (`server.voice.transcribe`): a segment at each pause."""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import Coroutine
from typing import Any

from server.voice.transcribe import Transcription


class CountingSTT:
    """Answers each segment with its length in samples; fails on request."""

    name = "counting"

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.prompts: list[str] = []
        self.fail = False

    async def transcribe(
        self, audio: bytes, *, filename: str = "audio.wav", prompt: str = ""
    ) -> str:
        with wave.open(io.BytesIO(audio)) as wav:
            samples = wav.getnframes()
        self.sent.append(samples)
        self.prompts.append(prompt)
        if self.fail:
            raise RuntimeError("provider down")
        return f"{samples} "


def spawn(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    return asyncio.create_task(coro)


async def test_each_pause_sends_only_the_audio_since_the_last_one() -> None:
    stt = CountingSTT()
    transcription = Transcription(stt, spawn)
    first = await transcription.at_pause(1, b"\0\0" * 100)
    so_far = await transcription.at_pause(1, b"\0\0" * 250)  # 150 samples more
    assert stt.sent == [100, 150]
    assert (first, so_far) == ("100", "100 150")  # the segments' words joined, stripped
    assert stt.prompts == ["", "100"]  # each segment continues from the words before it
    # the next utterance starts over
    assert await transcription.at_pause(2, b"\0\0" * 40) == "40"
    assert stt.sent == [100, 150, 40]


async def test_a_failed_segment_fails_the_transcript_so_far() -> None:
    stt = CountingSTT()
    transcription = Transcription(stt, spawn)
    stt.fail = True
    assert await transcription.at_pause(1, b"\0\0" * 100) is None
    stt.fail = False
    # the answer then transcribes the whole utterance instead
    assert await transcription.whole(b"\0\0" * 100) == "100"


async def test_a_later_transcript_that_is_cancelled_leaves_the_segments_alone() -> None:
    stt = CountingSTT()
    transcription = Transcription(stt, spawn)
    first = transcription.at_pause(1, b"\0\0" * 100)
    second = transcription.at_pause(1, b"\0\0" * 200)
    second.cancel()  # the call hung up while it was awaited, say
    assert await first == "100"


async def test_a_segment_is_not_held_back_for_the_words_before_it() -> None:
    stt = CountingSTT()
    transcription = Transcription(stt, spawn)
    first = transcription.at_pause(1, b"\0\0" * 100)
    second = transcription.at_pause(1, b"\0\0" * 300)  # the first still on its way
    assert (await first, await second) == ("100", "100 200")
    assert stt.prompts == ["", ""]
