"""One call's voice pipeline, top to bottom:

    caller's track -> resample (16 kHz mono) -> VAD -> turns (end of utterance)
      -> STT -> model (sentence by sentence) -> TTS -> outgoing track + `ai-audio-response`

The greeting is spoken first, a moment after the media connects; utterances are answered
one at a time, in order. Resampling, VAD and turn detection take ~25 us per 20 ms frame and
run on the event loop: a thread hop per frame costs more than the work (measured by the
voice bench). Decoding TTS audio runs in a thread, STT in its provider (a worker process or
HTTP), never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from aiortc import MediaStreamTrack
from av.audio.frame import AudioFrame

from server.ai.audio import wav_bytes
from server.conversation.ratelimit import RateLimiter
from server.errors import ChatError
from server.texts import AI_FAILED, RATE_LIMITED, SPEECH_FAILED
from server.voice.inbound import audio_frames
from server.voice.latency import TurnTimings
from server.voice.outbound import SpeakerTrack
from server.voice.ports import Conversation, Emit, Synthesizer, Transcriber
from server.voice.resample import RATE, MonoResampler
from server.voice.settings import VoiceSettings
from server.voice.speaker import Line, Speaker
from server.voice.turns import TurnDetector, Utterance
from server.voice.vad import SpeechDetector

log = logging.getLogger(__name__)


class Hearing:
    """resample -> VAD -> turns for one frame of the caller (~25 us)."""

    def __init__(self, settings: VoiceSettings) -> None:
        self._resample = MonoResampler(RATE)
        self._vad = SpeechDetector(settings.vad_aggressiveness, RATE)
        self._turns = TurnDetector(settings.vad_silence_ms, settings.vad_min_speech_ms)

    def __call__(self, frame: AudioFrame, arrived: float) -> list[Utterance]:
        pcm = self._resample(frame)
        done = (self._turns.feed(chunk, speech, arrived) for chunk, speech in self._vad(pcm))
        return [utterance for utterance in done if utterance is not None]


class CallPipeline:
    def __init__(
        self,
        *,
        session_id: str,
        call_id: str,
        stt: Transcriber,
        tts: Synthesizer,
        conversation: Conversation,
        track: SpeakerTrack,
        emit: Emit,
        settings: VoiceSettings,
    ) -> None:
        self.session_id = session_id
        self.call_id = call_id
        self._stt = stt
        self._conversation = conversation
        self._emit = emit
        self._settings = settings
        self._hearing = Hearing(settings)
        self._speaker = Speaker(tts, track, emit, self._speaking_failed)
        self._utterances: asyncio.Queue[Utterance] = asyncio.Queue()
        self._greeted = asyncio.Event()
        # the peer lives in this process: its own window (MAX_VOICE_TURNS_PER_MINUTE)
        self._turn_limit = RateLimiter(settings.max_turns_per_minute)
        self._tasks: set[asyncio.Task[None]] = set()
        self.turns: list[TurnTimings] = []  # latency of every answered utterance

    def start(self, incoming: MediaStreamTrack) -> None:
        """Media flows: greet after the configured delay, listen, answer."""
        self._spawn(self._greet())
        self._spawn(self._listen(incoming))
        self._spawn(self._converse())

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._speaker.close()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _greet(self) -> None:
        try:
            await asyncio.sleep(self._settings.greeting_delay_ms / 1000)
            text = await self._conversation.greet(self.session_id, self.call_id)
            self._speaker.say(Line(text))
        except Exception as exc:
            log.error("greeting failed", exc_info=exc)
        finally:
            self._greeted.set()

    async def _listen(self, incoming: MediaStreamTrack) -> None:
        async for frame in audio_frames(incoming):
            for utterance in self._hearing(frame, time.monotonic()):
                self._utterances.put_nowait(utterance)
        log.info("caller audio ended", extra={"callId": self.call_id})

    async def _converse(self) -> None:
        await self._greeted.wait()  # answers never overtake the greeting
        while True:
            utterance = await self._utterances.get()
            try:
                await self._answer(utterance)
            except Exception as exc:
                log.error("voice turn failed", exc_info=exc)

    async def _answer(self, utterance: Utterance) -> None:
        if not await self._turn_limit.allow(self.call_id):  # before any paid speech work
            log.info("voice turn refused: over the limit", extra={"callId": self.call_id})
            await self._emit("error", {"message": RATE_LIMITED})
            return
        timings = TurnTimings(
            utterance.speech_ended_at,
            utterance.detected_at,
            call_id=self.call_id,
            turn=len(self.turns) + 1,
        )
        try:
            wav = wav_bytes(utterance.pcm, RATE)
            started = time.monotonic()
            transcript = (await self._stt.transcribe(wav, filename="utterance.wav")).strip()
        except Exception as exc:
            log.warning("speech to text failed: %s", exc)
            await self._emit("error", {"message": SPEECH_FAILED})
            return
        timings.stt_finished(started, time.monotonic())
        if not transcript:
            log.info("utterance without words", extra={"seconds": round(utterance.seconds, 2)})
            return
        spoken = 0

        async def on_sentence(sentence: str) -> None:
            nonlocal spoken
            timings.sentence_ready(time.monotonic())
            self._speaker.say(Line(sentence, transcript, None if spoken else timings))
            spoken += 1

        try:
            reply = await self._conversation.respond(
                self.session_id, self.call_id, transcript, on_sentence, model_clock=timings.model
            )
        except Exception as exc:
            log.warning("voice reply failed: %s", exc)
            message = exc.message if isinstance(exc, ChatError) else AI_FAILED
            await self._emit("error", {"message": message})
            return
        if not spoken:
            timings.sentence_ready(time.monotonic())
            self._speaker.say(Line(reply, transcript, timings))
        self.turns.append(timings)
        timings.reply_finished()

    async def _speaking_failed(self, exc: BaseException) -> None:
        log.warning("text to speech failed: %s", exc)
        await self._emit("error", {"message": SPEECH_FAILED})
