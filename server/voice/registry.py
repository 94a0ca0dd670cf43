"""The live AI peers of this process, one per caller peer (`sessionId`, `peerId`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiortc import RTCIceCandidate

from server.calls.errors import CallFinished, CallNotFound
from server.calls.status import FINAL, CallStatus
from server.voice import endpoint
from server.voice.call import AICall, VoiceDeps
from server.voice.ports import Emit

log = logging.getLogger(__name__)

PeerKey = tuple[str, str]  # (sessionId, peerId)
MAX_EARLY_CANDIDATES = 64  # a browser gathers a handful; more is a misbehaving client


class AICalls:
    def __init__(self, deps: VoiceDeps) -> None:
        self.deps = deps
        self._calls: dict[PeerKey, AICall] = {}
        # candidates a peer trickled before its offer reached us: applied with the offer
        self._early: dict[PeerKey, list[RTCIceCandidate | None]] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def get(self, session_id: str, peer_id: str) -> AICall | None:
        return self._calls.get((session_id, peer_id))

    def of_call(self, call_id: str) -> list[AICall]:
        return [c for c in self._calls.values() if c.call_id == call_id]

    async def call_to_join(self, session_id: str, call_id: str | None) -> Any:
        """The live call of `session_id` (which must be `call_id`'s, when given)."""
        call = await self.deps.calls.by_session(session_id)
        if call_id is not None and call_id != call.id:
            raise CallNotFound()
        if CallStatus(call.status) in FINAL:
            raise CallFinished()
        return call

    async def offer(
        self, *, call_id: str, session_id: str, peer_id: str, sdp: str, emit: Emit
    ) -> str:
        """Answer `peer_id`'s offer with a new AI peer (a new offer replaces the old one)."""
        if CallStatus((await self.deps.calls.get(call_id)).status) in FINAL:
            raise CallFinished()
        key = (session_id, peer_id)
        previous = self._calls.pop(key, None)
        if previous is not None:
            await previous.hang_up(update_call=False)
        call = AICall(
            self.deps,
            call_id=call_id,
            session_id=session_id,
            peer_id=peer_id,
            emit=emit,
            on_closed=self._forget,
        )
        self._calls[key] = call
        for candidate in self._early.pop(key, []):
            await call.add_candidate(candidate)
        try:
            return await call.answer(sdp)
        except BaseException:
            await call.hang_up(update_call=False)
            raise

    async def candidate(
        self, session_id: str, peer_id: str, candidate: RTCIceCandidate | None
    ) -> None:
        key = (session_id, peer_id)
        call = self._calls.get(key)
        if call is not None:
            await call.add_candidate(candidate)
            return
        early = self._early.setdefault(key, [])
        if len(early) < MAX_EARLY_CANDIDATES:
            early.append(candidate)

    async def hang_up_peer(self, session_id: str, peer_id: str) -> bool:
        """The caller left or dropped; True when it had an AI peer."""
        self._early.pop((session_id, peer_id), None)
        call = self._calls.get((session_id, peer_id))
        if call is None:
            return False
        await call.hang_up()
        return True

    async def hang_up_call(self, call_id: str) -> None:
        """The call was ended elsewhere (`POST .../end`): close its peers, status as is."""
        for call in self.of_call(call_id):
            await call.hang_up(update_call=False)

    async def close_all(self) -> None:
        calls = list(self._calls.values())
        self._calls.clear()
        self._early.clear()
        await asyncio.gather(*(c.hang_up() for c in calls), return_exceptions=True)
        await endpoint.stop()  # the end-of-turn worker process

    def _forget(self, call: AICall) -> None:
        key = (call.session_id, call.peer_id)
        if self._calls.get(key) is call:
            del self._calls[key]
