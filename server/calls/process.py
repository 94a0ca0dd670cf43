"""`POST /api/v1/calls/conversation/process`: one spoken turn over REST.

audio -> STT -> the call's conversation (stored, answered, stored) -> sentiment of what the
caller said -> TTS of the answer -> a data URL.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass
from datetime import datetime

from server.ai.audio import has_audio_stream
from server.ai.speech import Speech, SpeechError
from server.calls.conversation import VoiceConversation
from server.calls.errors import CallFinished, NothingHeard, SpeechFailed
from server.calls.sentences import speakable
from server.calls.sentiment import Sentiment, SentimentAnalyzer
from server.calls.service import CallService
from server.calls.status import FINAL
from server.chat import clock
from server.errors import InvalidField

log = logging.getLogger(__name__)

PROCESS_PROTOCOL = "/api/v1/calls/conversation/process"  # metrics' and safety alerts' label

# the contract's spelling (`data:audio/mp3;base64,...`), not the registered audio/mpeg
MIME_TYPES = {"mp3": "audio/mp3", "wav": "audio/wav"}


@dataclass(frozen=True, slots=True)
class ProcessedTurn:
    user_message: str
    ai_response: str
    sentiment: Sentiment
    timestamp: datetime
    audio: bytes
    audio_format: str

    @property
    def audio_url(self) -> str:
        mime = MIME_TYPES.get(self.audio_format, f"audio/{self.audio_format}")
        return f"data:{mime};base64,{base64.b64encode(self.audio).decode('ascii')}"


@dataclass(frozen=True, slots=True)
class ConversationProcessor:
    calls: CallService
    speech: Speech
    conversation: VoiceConversation
    sentiment: SentimentAnalyzer

    async def process(
        self, call_id: str, audio: bytes, filename: str, system_prompt: str | None = None
    ) -> ProcessedTurn:
        call = await self.calls.get(call_id)
        if call.status in FINAL:
            raise CallFinished()
        if not await asyncio.to_thread(has_audio_stream, audio):  # a picture, text, junk
            raise InvalidField("audio")
        try:
            transcript = await self.speech.stt.transcribe(audio, filename=filename)
        except SpeechError as exc:
            log.warning("transcription failed: %s", exc, extra={"call": call_id})
            raise SpeechFailed() from exc
        if not transcript.strip():
            raise NothingHeard()
        # the sentiment needs only the transcript: judged while the model answers
        judging = asyncio.create_task(self.sentiment.analyze(transcript))
        try:
            reply = await self.conversation.respond(
                call.session_id,
                call.id,
                transcript,
                system_prompt=system_prompt,
                protocol=PROCESS_PROTOCOL,
            )
            sentiment = await judging
        finally:
            judging.cancel()
        try:
            spoken = await self.speech.tts.synthesize(speakable(reply) or reply)
        except SpeechError as exc:
            log.warning("speech synthesis failed: %s", exc, extra={"call": call_id})
            raise SpeechFailed() from exc
        return ProcessedTurn(
            user_message=transcript,
            ai_response=reply,
            sentiment=sentiment,
            timestamp=clock.now(),
            audio=spoken,
            audio_format=self.speech.tts.format,
        )
