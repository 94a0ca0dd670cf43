"""One call's voice pipeline, top to bottom:

    caller's track -> resample (16 kHz mono) -> VAD (loudness gate, Silero) -> echo -> turns
      -> at a pause: STT of the segment since the last pause; the words so far judge the
         end of the turn, Smart Turn (a worker process) where they cannot tell
      -> model (first clause, then sentence by sentence) -> TTS -> outgoing track
         + `ai-audio-response`
    the caller speaking over the AI -> barge-in: hold, then stop (`bargein`)

The greeting is spoken first, a moment after the media connects; utterances are answered
one at a time, in order. Resampling, VAD and turn detection run on the event loop (a chunk
costs less than a thread hop); Smart Turn runs in its worker process, STT in its provider (a worker
process or HTTP), decoding TTS audio in small steps on the loop (`clips`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import onnxruntime as ort
from aiortc import MediaStreamTrack
from av.audio.frame import AudioFrame

from server.chat import clock
from server.conversation.ratelimit import RateLimiter
from server.errors import ChatError
from server.metrics import VOICE_TURN_EVENTS
from server.texts import AI_FAILED, RATE_LIMITED, SPEECH_FAILED
from server.voice import endpoint, models, wording
from server.voice.bargein import BargeIn
from server.voice.echo import EchoGuard
from server.voice.inbound import audio_frames
from server.voice.latency import TurnTimings
from server.voice.outbound import SpeakerTrack
from server.voice.ports import Conversation, Emit, Synthesizer, Transcriber
from server.voice.resample import RATE, MonoResampler
from server.voice.settings import VoiceSettings
from server.voice.speaker import Line, Reply, Speaker
from server.voice.transcribe import Transcription
from server.voice.turns import (
    Event,
    Pause,
    SpeechOnset,
    SpeechStarted,
    TurnDetector,
    Utterance,
)
from server.voice.vad import SpeechDetector
from server.voice.wording import Wording

log = logging.getLogger(__name__)
T = TypeVar("T")
# The transcript of the utterance so far gets this long after a pause to decide the end of
# the turn alone, before Smart Turn is asked too: the bench's STT (100 ms) and a quick
# provider decide within it, so the model's CPU is spent only where the words cannot tell
# or come slowly (Whisper offline: then the two run side by side).
WORDS_FIRST_SECONDS = 0.15


class Hearing:
    """resample -> VAD -> echo guard -> turns for one frame of the caller."""

    def __init__(
        self, settings: VoiceSettings, vad_model: ort.InferenceSession, track: SpeakerTrack
    ) -> None:
        self._resample = MonoResampler(RATE)
        self.vad = SpeechDetector(vad_model, settings.vad_threshold)
        self._echo = (
            EchoGuard(track.sent, settings.echo_return_loss_db) if settings.echo_guard else None
        )
        self.turns = TurnDetector(
            pause_ms=settings.pause_ms,
            max_silence_ms=settings.max_silence_ms,
            min_speech_ms=settings.vad_min_speech_ms,
            max_utterance_ms=int(settings.max_utterance_seconds * 1000),
            confirm_ms=settings.barge_in_ms,
        )

    def __call__(self, frame: AudioFrame, arrived: float) -> list[Event]:
        pcm = self._resample(frame)
        done = (
            self.turns.feed(chunk, self._the_caller(chunk, speech, arrived), arrived)
            for chunk, speech in self.vad(pcm)
        )
        return [event for event in done if event is not None]

    def _the_caller(self, chunk: bytes, speech: bool, now: float) -> bool:
        """Speech, and not the AI's own voice coming back (echo is silence to the turns)."""
        return speech if self._echo is None else self._echo.callers(chunk, speech, now)


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
        self._conversation = conversation
        self._emit = emit
        self._settings = settings
        self._speaker = Speaker(tts, track, emit, self._speaking_failed)
        self._barge_in = BargeIn(track, enabled=settings.barge_in)
        self._track = track
        self._transcription = Transcription(stt, self._spawn)
        self._reply: Reply | None = None  # the latest reply, as the caller heard it
        self._responding = False  # the model is writing `_reply`
        self._answering: asyncio.Task[None] | None = None
        self._revising: asyncio.Task[None] | None = None  # storing an interruption
        self._utterances: asyncio.Queue[Utterance] = asyncio.Queue()
        self._greeted = asyncio.Event()
        # the peer lives in this process: its own window (MAX_VOICE_TURNS_PER_MINUTE)
        self._turn_limit = RateLimiter(settings.max_turns_per_minute)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.turns: list[TurnTimings] = []  # latency of every answered utterance

    def start(self, incoming: MediaStreamTrack) -> None:
        """Media flows: greet after the configured delay, listen, answer."""
        self._spawn(self._greet())
        if self._settings.turn_model == "smart-turn":
            self._spawn(self._warm_up())
        self._spawn(self._listen(incoming))
        self._spawn(self._converse())

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._speaker.close()

    def _spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

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
        try:
            vad_model = await asyncio.to_thread(models.session, models.SILERO_VAD)
        except models.ModelUnavailable as exc:
            log.error("voice activity model unavailable: the AI cannot hear this call: %s", exc)
            raise
        hearing = Hearing(self._settings, vad_model, self._track)
        async for frame in audio_frames(incoming):
            now = time.monotonic()
            for event in hearing(frame, now):
                if isinstance(event, Utterance):
                    if event.ended_by == "cap":  # speech since the last pause: STT it all
                        event = dataclasses.replace(event, transcript=None)
                    self._utterances.put_nowait(event)
                elif isinstance(event, Pause):
                    event.transcript = self._transcription.at_pause(event.utterance, event.pcm)
                    if self._settings.turn_model == "smart-turn":
                        self._spawn(self._decide(hearing.turns, event))
                elif isinstance(event, SpeechOnset):
                    self._barge_in.onset(now, self._ai_talking())
                elif isinstance(event, SpeechStarted):
                    if self._barge_in.confirmed(self._ai_talking()):
                        self._interrupt()
            self._barge_in.tick(now)
        log.info("caller audio ended", extra={"callId": self.call_id})

    async def _warm_up(self) -> None:
        """Start the end-of-turn worker while the greeting plays (the first call's ~1 s)."""
        try:
            await endpoint.start()
        except Exception as exc:
            log.error("end-of-turn model unavailable: turns end on silence alone: %s", exc)

    async def _decide(self, turns: TurnDetector, pause: Pause) -> None:
        """After a pause: has the caller finished? Two judges. The words of the utterance so
        far (`wording`) speak first: a closed sentence ends the turn, an open one (`...살이신데`,
        `어머니가`) does not, whatever it sounded like. When the words cannot tell (a noun
        phrase, no transcript), Smart Turn's reading of the sound decides. Waiting for the
        words costs nothing: the answer needs the transcript anyway, and it was started at
        the pause (`transcribe`). Smart Turn is asked only if the words have not decided
        within WORDS_FIRST_SECONDS: its ~0.1 s of CPU a pause is then saved on most turns."""
        started = time.monotonic()
        words: asyncio.Task[bool | None] | None = None
        if self._settings.turn_transcript and pause.transcript is not None:
            words = self._spawn(self._read_out(pause.transcript))
            await asyncio.wait({words}, timeout=WORDS_FIRST_SECONDS)
        model: asyncio.Task[bool | None] | None = None
        asked = time.monotonic()
        try:
            if words is None or not words.done() or words.result() is None:
                model = self._spawn(self._hear_out(pause))
            finished, judge = (await words if words is not None else None), "transcript"
            if finished is None and model is not None:
                finished, judge = await self._hear_out_by(model, asked), "model"
        finally:
            if model is not None:
                model.cancel()  # a decision still queued in the worker is not needed
            if words is not None:
                words.cancel()
        if finished is False:
            VOICE_TURN_EVENTS.labels("turn_continued").inc()
            return  # the caller goes on, or the longest silence ends the turn
        if finished is None:  # no verdict in time: the pause so far ends it
            utterance = turns.end(pause, time.monotonic(), None, "deadline")
        else:
            utterance = turns.end(pause, time.monotonic(), time.monotonic() - started, judge)
        if utterance is not None:  # None: the caller has spoken again since
            self._utterances.put_nowait(utterance)

    async def _hear_out_by(self, model: asyncio.Task[bool | None], asked: float) -> bool | None:
        """The model's verdict, if it comes within TURN_DECISION_DEADLINE_MS of being asked
        (a busy machine queues its decisions: rather than wait for the longest silence, the
        pause ends the turn, as the fixed silence rule did); None when it did not, or when
        the worker was too busy to take it (then the deadline is waited out all the same)."""
        deadline = asked + self._settings.turn_decision_deadline_ms / 1000
        try:
            verdict = await asyncio.wait_for(
                asyncio.shield(model), max(0.0, deadline - time.monotonic())
            )
        except TimeoutError:
            return None
        if verdict is None:
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        return verdict

    async def _hear_out(self, pause: Pause) -> bool | None:
        """Smart Turn's verdict: True when the turn sounds finished. None when the worker
        had too many decisions to take this one; False when it failed (the longest silence
        then ends the turn)."""
        try:
            return await endpoint.decide(pause.pcm) >= endpoint.COMPLETE
        except endpoint.DeciderBusy:
            VOICE_TURN_EVENTS.labels("model_busy").inc()
            return None
        except Exception as exc:  # the worker died
            log.warning("end-of-turn decision failed: %s", exc)
            return False

    async def _read_out(self, transcript: asyncio.Task[str | None]) -> bool | None:
        """The words' verdict: True for a finished sentence, False for an open one."""
        text = await asyncio.shield(transcript)  # the answer needs it, whatever happens here
        if not text:
            return None
        verdict = wording.judge(text)
        return None if verdict is Wording.UNSURE else verdict is Wording.FINISHED

    def _ai_talking(self) -> bool:
        return self._speaker.busy or self._responding

    def _interrupt(self) -> None:
        """The caller spoke over the AI: silence now, drop the rest of the reply, keep what
        was said (stored with `metadata.interrupted`), tell the page."""
        VOICE_TURN_EVENTS.labels("interruption").inc()
        self._speaker.interrupt()
        reply = self._reply
        if self._responding and self._answering is not None:
            self._answering.cancel()  # the model's stream too; respond stores what was said
        elif reply is not None and reply.message_id is not None:
            self._revising = self._spawn(
                self._conversation.interrupted(self.session_id, reply.message_id, reply.text)
            )
        log.info(
            "caller barged in",
            extra={"callId": self.call_id, "spoken": len(reply.spoken) if reply else 0},
        )
        self._spawn(self._tell_interrupted())

    async def _tell_interrupted(self) -> None:
        await self._emit("ai-audio-interrupted", {"timestamp": clock.to_ms(clock.now())})

    async def _converse(self) -> None:
        await self._greeted.wait()  # answers never overtake the greeting
        while True:
            utterance = await self._utterances.get()
            self._answering = answering = self._spawn(self._answer(utterance))
            await asyncio.wait({answering})  # cancelled by a barge-in, or done
            if not answering.cancelled() and (exc := answering.exception()) is not None:
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
            decision_seconds=utterance.decision_seconds,
        )
        VOICE_TURN_EVENTS.labels(f"end_of_turn_{utterance.ended_by}").inc()
        started = time.monotonic()
        transcript = None
        if utterance.transcript is not None:  # started at the pause
            transcript = await utterance.transcript
        if transcript is None:
            transcript = await self._transcription.whole(utterance.pcm)
        if transcript is None:
            await self._emit("error", {"message": SPEECH_FAILED})
            return
        timings.stt_finished(started, time.monotonic())
        if not transcript:
            log.info("utterance without words", extra={"seconds": round(utterance.seconds, 2)})
            VOICE_TURN_EVENTS.labels("false_start").inc()
            return
        spoken = 0
        reply = Reply()

        feeling: dict[str, Any] | None = None  # the caller's sentiment, once judged

        def on_sentiment(judged: Any) -> None:
            nonlocal feeling
            feeling = {"sentiment": judged.sentiment, "score": judged.score}

        async def on_sentence(sentence: str) -> None:
            nonlocal spoken
            timings.sentence_ready(time.monotonic())
            first = None if spoken else timings
            self._speaker.say(Line(sentence, transcript, first, reply, sentiment=feeling))
            spoken += 1

        if self._revising is not None:
            # the interrupted reply is stored as heard before this one is answered
            await asyncio.wait({self._revising})
        self._reply, self._responding = reply, True
        try:
            text = await self._conversation.respond(
                self.session_id,
                self.call_id,
                transcript,
                on_sentence,
                model_clock=timings.model,
                reply=reply,
                on_sentiment=on_sentiment,
            )
        except Exception as exc:
            log.warning("voice reply failed: %s", exc)
            message = exc.message if isinstance(exc, ChatError) else AI_FAILED
            await self._emit("error", {"message": message})
            return
        finally:
            self._responding = False
        if not spoken:
            timings.sentence_ready(time.monotonic())
            self._speaker.say(Line(text, transcript, timings, reply, sentiment=feeling))
        self.turns.append(timings)
        timings.reply_finished()

    async def _speaking_failed(self, exc: BaseException) -> None:
        log.warning("text to speech failed: %s", exc)
        await self._emit("error", {"message": SPEECH_FAILED})
