"""Socket.IO `/signaling`: WebRTC voice calls with the AI as a peer (CONTRACT §2).

Peers of a call join its session; `answer` and `ice-candidate` are relayed between them;
an `offer` is answered by the server's AI peer (`server.voice`), which also takes the
caller's ICE candidates. Leaving or dropping closes the caller's AI peer and ends the call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from namespaces.base import ContractNamespace, Payload, parse
from server.auth import socket_grant
from server.calls.errors import CallNotFound
from server.errors import InvalidField
from server.ownership import require_owner
from server.voice.peer import BadCandidate, BadOffer, parse_candidate
from server.voice.registry import AICalls

AI_PEER_ID = "ai-server"
Id = Field(min_length=1, max_length=255)


class JoinSession(Payload):
    sessionId: str = Id
    peerId: str = Id
    callId: str | None = Field(default=None, min_length=1, max_length=36)


class PeerRef(Payload):
    sessionId: str = Id
    peerId: str = Id


class SessionDescription(Payload):
    type: Literal["offer", "answer"]
    sdp: str = Field(min_length=1, max_length=100_000)


class Offer(PeerRef):
    offer: SessionDescription


class Answer(PeerRef):
    answer: SessionDescription


class CandidateInit(Payload):
    """The browser's `RTCIceCandidate` JSON; an empty `candidate` is end of candidates."""

    candidate: str = Field(default="", max_length=1000)
    sdpMid: str | None = Field(default=None, max_length=64)
    sdpMLineIndex: int | None = Field(default=None, ge=0, le=1000)
    usernameFragment: str | None = Field(default=None, max_length=256)


class IceCandidate(PeerRef):
    candidate: CandidateInit | None = None


def room(session_id: str) -> str:
    return f"signaling:{session_id}"


class SignalingNamespace(ContractNamespace):
    def __init__(self, ai_calls: Callable[[], AICalls], namespace: str = "/signaling") -> None:
        super().__init__(namespace)
        self._ai_calls = ai_calls

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        grant = socket_grant(environ, auth)  # refuses the connection without a valid token
        # joined: sessionId -> (peerId, callId); user: the token's (None without AUTH_SECRET)
        await self.save_session(sid, {"joined": {}, "user": grant.user})

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        joined: dict[str, tuple[str, str]] = (await self.get_session(sid)).get("joined", {})
        for session_id, (peer_id, _) in list(joined.items()):
            await self.emit("peer-disconnected", {"peerId": peer_id}, room=room(session_id))
            await self._ai_calls().hang_up_peer(session_id, peer_id)

    async def on_join_session(self, sid: str, data: Any) -> dict[str, Any]:
        req = parse(JoinSession, data)
        # a call belongs to its creator: checked before anything about the call is told
        user = (await self.get_session(sid)).get("user")
        await require_owner(req.sessionId, user, not_found=CallNotFound())
        call = await self._ai_calls().call_to_join(req.sessionId, req.callId)
        joined = (await self.get_session(sid))["joined"]
        joined[req.sessionId] = (req.peerId, call.id)
        await self.enter_room(sid, room(req.sessionId))
        reply = {"sessionId": req.sessionId, "peerId": req.peerId}
        await self.emit("joined-session", reply, to=sid)
        await self.emit(
            "peer-joined", {"peerId": req.peerId}, room=room(req.sessionId), skip_sid=sid
        )
        return reply

    async def on_offer(self, sid: str, data: Any) -> dict[str, Any]:
        req = parse(Offer, data)
        call_id = await self._member(sid, req)
        if req.offer.type != "offer":
            raise InvalidField("offer.type")

        async def to_caller(event: str, payload: dict[str, Any]) -> None:
            await self.emit(event, payload, to=sid)

        try:
            sdp = await self._ai_calls().offer(
                call_id=call_id,
                session_id=req.sessionId,
                peer_id=req.peerId,
                sdp=req.offer.sdp,
                emit=to_caller,
            )
        except BadOffer:
            raise InvalidField("offer.sdp") from None
        reply = {"peerId": AI_PEER_ID, "answer": {"type": "answer", "sdp": sdp}}
        await self.emit("answer", reply, to=sid)
        return reply

    async def on_answer(self, sid: str, data: Any) -> dict[str, Any]:
        req = parse(Answer, data)
        await self._member(sid, req)
        if req.answer.type != "answer":
            raise InvalidField("answer.type")
        relayed = {"peerId": req.peerId, "answer": req.answer.model_dump()}
        await self.emit("answer", relayed, room=room(req.sessionId), skip_sid=sid)
        return {"sessionId": req.sessionId, "peerId": req.peerId}

    async def on_ice_candidate(self, sid: str, data: Any) -> dict[str, Any]:
        req = parse(IceCandidate, data)
        await self._member(sid, req)
        init = req.candidate
        try:
            candidate = (
                None
                if init is None
                else parse_candidate(init.candidate, init.sdpMid, init.sdpMLineIndex)
            )
        except BadCandidate:
            raise InvalidField("candidate") from None
        await self._ai_calls().candidate(req.sessionId, req.peerId, candidate)
        relayed = {
            "peerId": req.peerId,
            "candidate": None if init is None else init.model_dump(exclude_none=True),
        }
        await self.emit("ice-candidate", relayed, room=room(req.sessionId), skip_sid=sid)
        return {"sessionId": req.sessionId, "peerId": req.peerId}

    async def on_leave_session(self, sid: str, data: Any) -> dict[str, Any]:
        req = parse(PeerRef, data)
        joined = (await self.get_session(sid))["joined"]
        reply = {"sessionId": req.sessionId, "peerId": req.peerId}
        if req.sessionId not in joined:
            return reply  # idempotent: leaving twice is not an error
        if joined[req.sessionId][0] != req.peerId:  # no leaving in another peer's name
            raise InvalidField("peerId")
        del joined[req.sessionId]
        await self.leave_room(sid, room(req.sessionId))
        await self.emit("peer-left", {"peerId": req.peerId}, room=room(req.sessionId))
        await self._ai_calls().hang_up_peer(req.sessionId, req.peerId)
        return reply

    async def _member(self, sid: str, req: PeerRef) -> str:
        """The call id of `req.sessionId`, which this socket must have joined as `peerId`."""
        joined = (await self.get_session(sid))["joined"]
        if req.sessionId not in joined:
            raise CallNotFound()
        peer_id, call_id = joined[req.sessionId]
        if req.peerId != peer_id:
            raise InvalidField("peerId")
        return call_id
