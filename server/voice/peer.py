"""The AI's WebRTC peer: answers the caller's offer, takes their ICE candidates, sends audio.

aiortc gathers every local candidate before `setLocalDescription` returns, so the answer
carries them all and the AI peer never trickles. The caller's candidates do trickle, often
before the offer has been applied: they are queued until then, never dropped.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import aioice.ice
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceCandidate,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.sdp import SessionDescription, candidate_from_sdp

from server.calls.rtc import AI_PEER_USER, IceConfig
from server.voice.receive import tune_receiver

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"

# aioice has no option for its host addresses and always leaves out 127.0.0.1; a context
# variable scopes a replacement list to the peer that gathers, not the whole process.
_host_addresses: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "ice_host_addresses", default=None
)
_aioice_host_addresses = aioice.ice.get_host_addresses


def _configured_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    chosen = _host_addresses.get()
    if chosen is None:
        return _aioice_host_addresses(use_ipv4, use_ipv6)
    versions = {4} if use_ipv4 else set()
    versions |= {6} if use_ipv6 else set()
    return [a for a in chosen if ipaddress.ip_address(a).version in versions]


aioice.ice.get_host_addresses = _configured_host_addresses


@contextmanager
def host_addresses(addresses: list[str] | None) -> Iterator[None]:
    """Gather ICE host candidates on exactly `addresses` (None = every interface)."""
    token = _host_addresses.set(addresses)
    try:
        yield
    finally:
        _host_addresses.reset(token)


class BadOffer(ValueError):
    """The offer is not an SDP offer this peer can answer (no audio, unparsable)."""


class BadCandidate(ValueError):
    """The ICE candidate is not a valid `RTCIceCandidateInit`."""


def parse_candidate(
    candidate: str, sdp_mid: str | None, sdp_mline_index: int | None
) -> RTCIceCandidate | None:
    """A browser's `RTCIceCandidate` JSON as aiortc's candidate; None = end of candidates."""
    line = candidate.strip()
    if line.startswith("a="):
        line = line[2:]
    if line.startswith("candidate:"):
        line = line[len("candidate:") :]
    if not line:
        return None
    bits = line.split()
    if len(bits) < 8 or bits[6] != "typ" or not bits[1].isdigit() or not bits[5].isdigit():
        raise BadCandidate(candidate)
    if sdp_mid is None and sdp_mline_index is None:
        raise BadCandidate("sdpMid or sdpMLineIndex is required")
    try:
        parsed = candidate_from_sdp(line)
    except (ValueError, AssertionError) as exc:
        raise BadCandidate(candidate) from exc
    parsed.sdpMid = sdp_mid
    parsed.sdpMLineIndex = sdp_mline_index
    return parsed


def ice_servers(ice: IceConfig, loopback: bool) -> list[RTCIceServer]:
    """The AI peer's STUN and TURN servers (aioice uses the first of each; TURN with fresh
    REST credentials when `TURN_SECRET` is set); none on loopback. An empty list, not None:
    aiortc's default would be Google's server."""
    if loopback:
        return []
    servers = [RTCIceServer(urls=list(ice.stun_urls))] if ice.stun_urls else []
    if ice.turn_urls:
        creds = ice.credentials(AI_PEER_USER)
        servers.append(
            RTCIceServer(
                urls=list(ice.turn_urls), username=creds.username, credential=creds.credential
            )
        )
    return servers


class AIPeer:
    def __init__(
        self,
        outgoing: MediaStreamTrack,
        *,
        loopback: bool,
        stun_server_urls: Sequence[str] = (),
        ice: IceConfig | None = None,
    ) -> None:
        self._loopback = loopback
        ice = ice or IceConfig(stun_urls=tuple(stun_server_urls))
        policy = RTCIceTransportPolicy.RELAY if ice.relay_only else RTCIceTransportPolicy.ALL
        self._pc = RTCPeerConnection(
            RTCConfiguration(iceServers=ice_servers(ice, loopback), iceTransportPolicy=policy)
        )
        self._outgoing = outgoing
        self._answered = False
        self._early: list[RTCIceCandidate | None] = []
        self._closed = False
        self.incoming: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
        self.on_state: Callable[[str], None] = lambda state: None
        self.receiving_tuned = False  # the caller's audio decoded inline (`receive`)
        self._pc.on("track", self._on_track)
        self._pc.on("connectionstatechange", self._on_connection_state)

    @property
    def state(self) -> str:
        return self._pc.connectionState

    async def answer(self, offer_sdp: str) -> str:
        """Apply the caller's offer and return the answer's SDP (all candidates inside)."""
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        except Exception as exc:  # aiortc raises ValueError, KeyError... on bad SDP
            raise BadOffer(str(exc)) from exc
        if not any(t.kind == "audio" for t in self._pc.getTransceivers()):
            raise BadOffer("the offer has no audio")
        try:
            # takes over the offered audio transceiver: recvonly becomes sendrecv
            self._pc.addTrack(self._outgoing)
            answer = await self._pc.createAnswer()
        except Exception as exc:  # parsed but not answerable (a media section without a
            raise BadOffer(str(exc)) from exc  # direction: aiortc's and_direction fails)
        try:
            with host_addresses([LOOPBACK] if self._loopback else None):
                await self._pc.setLocalDescription(answer)
        except ValueError as exc:  # an answer aiortc itself refuses, from an odd offer (an
            raise BadOffer(str(exc)) from exc  # empty `a=mid`: sections that do not match)
        self._answered = True
        early, self._early = self._early, []
        for candidate in early:
            await self._apply(candidate)
        return self._pc.localDescription.sdp

    @property
    def send_codec(self) -> str | None:
        """The MIME type the outgoing audio is sent as (`audio/opus`...), once answered:
        aiortc sends with the first codec of the answer's audio section."""
        if self._pc.localDescription is None:
            return None
        for media in SessionDescription.parse(self._pc.localDescription.sdp).media:
            if media.kind == "audio" and media.rtp.codecs:
                return str(media.rtp.codecs[0].mimeType)
        return None

    async def add_candidate(self, candidate: RTCIceCandidate | None) -> None:
        """A remote candidate, or None for end of candidates; queued until answered."""
        if self._closed:
            return
        if not self._answered:
            self._early.append(candidate)
            return
        await self._apply(candidate)

    async def _apply(self, candidate: RTCIceCandidate | None) -> None:
        if candidate is not None and self._loopback and candidate.ip != LOOPBACK:
            log.info("non-loopback candidate ignored in loopback mode")
            return
        await self._pc.addIceCandidate(candidate)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self.incoming.done():
            self.incoming.cancel()
        await self._pc.close()

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and not self.incoming.done():
            frames = getattr(track, "_queue", None)  # aiortc's RemoteStreamTrack
            for receiver in self._pc.getReceivers():
                if receiver.track is track and isinstance(frames, asyncio.Queue):
                    self.receiving_tuned = tune_receiver(receiver, frames)
            self.incoming.set_result(track)

    def _on_connection_state(self) -> None:
        log.info("ai peer connection state", extra={"state": self._pc.connectionState})
        self.on_state(self._pc.connectionState)
