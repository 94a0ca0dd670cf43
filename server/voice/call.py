"""The AI's side of one call: its peer, its pipeline, and the call's status as media goes.

offer                 -> call CONNECTING, the AI peer answers
connection 'connected' -> call IN_PROGRESS, the pipeline starts (greeting, listening)
hang up / 'failed'    -> the peer closes; the call ENDED (FAILED if media never flowed)
the call ends elsewhere (`POST .../end`) -> the registry closes the peer
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiortc import RTCIceCandidate

from server.metrics import ACTIVE_CALLS
from server.voice import opus
from server.voice.outbound import SpeakerTrack
from server.voice.peer import AIPeer
from server.voice.pipeline import CallPipeline
from server.voice.ports import CallStates, Conversation, Emit, Synthesizer, Transcriber
from server.voice.settings import VoiceSettings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class VoiceDeps:
    calls: CallStates
    stt: Transcriber
    tts: Synthesizer
    conversation: Conversation
    settings: VoiceSettings


class AICall:
    def __init__(
        self,
        deps: VoiceDeps,
        *,
        call_id: str,
        session_id: str,
        peer_id: str,
        emit: Emit,
        on_closed: Callable[[AICall], None],
    ) -> None:
        self.call_id = call_id
        self.session_id = session_id
        self.peer_id = peer_id
        self._calls = deps.calls
        self._on_closed = on_closed
        self.track = SpeakerTrack()
        self.peer = AIPeer(
            self.track,
            loopback=deps.settings.ice_loopback,
            ice=deps.settings.ice,
        )
        self.pipeline = CallPipeline(
            session_id=session_id,
            call_id=call_id,
            stt=deps.stt,
            tts=deps.tts,
            conversation=deps.conversation,
            track=self.track,
            emit=emit,
            settings=deps.settings,
        )
        self.peer.on_state = self._on_peer_state
        self.media_flowed = False
        self.closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        ACTIVE_CALLS.inc()  # until hang_up, which every AI peer reaches (registry)

    async def answer(self, offer_sdp: str) -> str:
        await self._transition("connect", self._calls.connect)
        sdp = await self.peer.answer(offer_sdp)
        self.track.send_opus = opus.is_opus(self.peer.send_codec or "")
        self._spawn(self._connect_or_give_up())
        return sdp

    async def add_candidate(self, candidate: RTCIceCandidate | None) -> None:
        await self.peer.add_candidate(candidate)

    async def hang_up(self, *, update_call: bool = True) -> None:
        """Close the peer and the pipeline; end the call unless that is already done."""
        if self.closed:
            return
        self.closed = True
        ACTIVE_CALLS.dec()
        current = asyncio.current_task()
        others = [t for t in self._tasks if t is not current]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        await self.pipeline.close()
        self.track.stop()
        await self.peer.close()
        if update_call:
            await self._transition("hang_up", self._calls.hang_up)
        self._on_closed(self)
        # the outgoing audio's punctuality over the call (late frames = audible gaps)
        log.info("ai peer closed", extra={"callId": self.call_id, **self.track.pacing.as_log()})

    def _on_peer_state(self, state: str) -> None:
        if state == "connected" and not self.media_flowed:
            self.media_flowed = True
            self._spawn(self._media_started())
        elif state == "failed" and not self.closed:
            self._spawn(self.hang_up())

    async def _connect_or_give_up(self) -> None:
        # ICE reports failure only after the caller's end of candidates, which the
        # documented page never sends: without this a peer that never connects stays.
        await asyncio.sleep(CONNECT_TIMEOUT_SECONDS)
        if not self.media_flowed:
            log.info("media never connected", extra={"callId": self.call_id})
            await self.hang_up()

    async def _media_started(self) -> None:
        incoming = await self.peer.incoming
        await self._transition("media_flowing", self._calls.media_flowing)
        self.pipeline.start(incoming)

    async def _transition(self, name: str, step: Callable[[str], Awaitable[Any]]) -> None:
        # Another path may have moved the call first (the page's own POST .../connect, an
        # earlier hang-up): the status machine refuses, and that is not this peer's failure.
        try:
            await step(self.call_id)
        except Exception as exc:
            log.info("call status unchanged", extra={"step": name, "reason": str(exc)[:100]})

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
