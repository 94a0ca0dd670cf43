"""The room core (CONTRACT §4): store a frame, send it to the room, and ask the model."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from server.ai.base import LLM
from server.chat import clock
from server.conversation.coalesce import DeltaCoalescer
from server.conversation.lanes import Lanes
from server.conversation.ratelimit import Limiter
from server.conversation.tools import Toolbox
from server.conversation.turn import log_turn_failure, run_turn
from server.errors import ChatError
from server.logs import preview
from server.metrics import TurnClock
from server.rooms.frames import (
    LLM_PARTICIPANT,
    IncomingFrame,
    error_frame,
    response_frame,
    streaming_frame,
    with_timestamp,
)
from server.rooms.log import LogEntry, RoomLog
from server.rooms.registry import RoomClient, RoomRegistry
from server.rooms.transcript import context_entries, transcript
from server.safety.detector import SafetyFlag
from server.safety.layer import SafetyLayer
from server.texts import AI_FAILED, RATE_LIMITED, TEMPORARY_FAILURE

log = logging.getLogger(__name__)

ROOM_PROTOCOL = "/v1/session/chat"  # the metrics' label


class RoomService:
    def __init__(
        self,
        *,
        room_log: RoomLog,
        llm: LLM,
        toolbox: Toolbox,
        limiter: Limiter,
        context_messages: int,
        ai_timeout_seconds: float,
        delta_flush_seconds: float,
        safety: SafetyLayer,
        registry: RoomRegistry | None = None,
    ) -> None:
        self.safety = safety
        self.log = room_log
        self.llm = llm
        self.toolbox = toolbox
        self.limiter = limiter
        self.context_messages = context_messages
        self.ai_timeout = ai_timeout_seconds
        self.delta_flush = delta_flush_seconds
        self.registry = registry or RoomRegistry()
        # every client of a room receives its frames in the order they are stored
        self._delivery = Lanes()
        self._turns = Lanes()  # model turns of a room, one at a time, in order
        self._turn_tasks: set[asyncio.Task[None]] = set()

    async def join(self, sid: str, client: RoomClient) -> None:
        await self.registry.join(sid, client)

    async def leave(self, sid: str, client: RoomClient) -> None:
        await self.registry.leave(sid, client)
        if not self.registry.clients(sid):
            self.limiter.forget_idle()  # keeps the limiter from growing with every room ever used

    async def history(self, sid: str, limit: int) -> Sequence[LogEntry]:
        return await self.log.read(sid, limit)

    async def post(self, sid: str, frame: IncomingFrame, sender: RoomClient) -> LogEntry:
        """Store a client's frame and send it to the room; if it asks the model, queue the
        model's turn (its reply streams to the room later)."""
        if frame.prompt is not None and not await self.limiter.allow(sid):
            raise ChatError(RATE_LIMITED)
        entry = await self._publish(sid, frame.participant, frame.body)
        log.info(
            "room message",
            extra={
                "sid": sid,
                "participant": frame.participant,
                "text": preview(frame.prompt or str(frame.body["bd"].get("text", ""))),
            },
        )
        if frame.prompt is not None:
            flag = await self.safety.assess(frame.prompt, protocol=ROOM_PROTOCOL, session_id=sid)
            task = asyncio.create_task(self._answer(sid, entry, frame.prompt, sender, flag))
            self._turn_tasks.add(task)
            task.add_done_callback(self._turn_tasks.discard)
        return entry

    async def shut_down(self, timeout: float) -> None:
        """Let the model turns under way finish and be sent, then close every client."""
        if self._turn_tasks:
            await asyncio.wait(set(self._turn_tasks), timeout=timeout)
        for client in self.registry.everyone():
            await client.close()

    async def aclose(self) -> None:
        """Cancel the turns still running (after `shut_down`, only ones past its timeout)."""
        tasks = list(self._turn_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _publish(self, sid: str, participant: str, body: dict[str, Any]) -> LogEntry:
        async with self._delivery.lane(sid):
            stored = with_timestamp(body, clock.to_iso(clock.now()))
            entry = await self.log.append(sid, participant, stored)
            await self.registry.broadcast(sid, entry.body)
            return entry

    async def _send_to_room(self, sid: str, frame: Mapping[str, Any]) -> None:
        async with self._delivery.lane(sid):
            await self.registry.broadcast(sid, frame)

    async def _answer(
        self,
        sid: str,
        asking: LogEntry,
        question: str,
        sender: RoomClient,
        flag: SafetyFlag | None = None,
    ) -> None:
        turn = TurnClock(ROOM_PROTOCOL)
        # nothing may be awaited before the lane is entered: that keeps the turns in order
        async with self._turns.lane(sid):
            try:
                text = await self._generate(sid, asking, question, flag)
            except Exception as exc:
                turn.failed()
                log_turn_failure(
                    log, "room AI turn failed", exc, {"sid": sid, "provider": self.llm.name}
                )
                await sender.send(error_frame(AI_FAILED))
                return
            try:
                await self._publish(sid, LLM_PARTICIPANT, response_frame(text))
            except Exception as exc:  # nobody awaits this task: every failure ends here
                turn.failed()
                log.warning("room reply not stored", extra={"sid": sid}, exc_info=exc)
                reason = exc.message if isinstance(exc, ChatError) else TEMPORARY_FAILURE
                await sender.send(error_frame(reason))
                return
            turn.done()

    async def _generate(
        self, sid: str, asking: LogEntry, question: str, flag: SafetyFlag | None
    ) -> str:
        recent = await self.log.read(sid, self.context_messages)
        entries = context_entries(recent, asking, self.context_messages)
        messages = transcript(entries, asking, question)

        async def stream_to_room(delta: str) -> None:
            await self._send_to_room(sid, streaming_frame(delta))

        coalescer = DeltaCoalescer(stream_to_room, self.delta_flush)
        result = await run_turn(
            self.llm,
            self.toolbox,
            messages,
            coalescer.add,
            timeout=self.ai_timeout,
            safety=flag,
        )
        await coalescer.flush()
        return result.text
