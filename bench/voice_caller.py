"""One caller of the voice bench: the call page's flow, in Python, cheap enough to run dozens.

Signaling is the page's (`GET /api/v1/calls/config`, `POST /api/v1/calls`, Socket.IO
`/signaling` with default transports: `join-session`, `offer`, end of candidates, then
`POST .../connect`; `POST .../end` and `leave-session` to hang up). Media is a real aiortc
peer over 127.0.0.1, but the load generator spends as little CPU as it can:

- the microphone sends Opus packets encoded once, before the run (`Utterance`), paced every
  20 ms like a browser: the caller's WAV, then encoded silence, never re-encoded per call;
- the AI's audio is not decoded: every RTP packet is timed on arrival, before any jitter
  buffer, with its sequence number, RTP timestamp and the audio level the sender put in its
  `ssrc-audio-level` header extension (127 = digital silence).

What the caller measures (see `ArrivalLog`): the time from the last voiced frame it sent to
the first AI audio packet that arrives, and the punctuality of the AI's packets.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import socketio
import webrtcvad
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.codecs.opus import OpusEncoder
from aiortc.rtp import RtpPacket
from av.audio.frame import AudioFrame
from av.packet import Packet

from server.ai.audio import decode_to_pcm
from server.voice.opus import SILENCE as SERVER_SILENCE
from server.voice.peer import LOOPBACK, host_addresses
from tests.support.voice_client import pcm16, pink_noise
from tests.support.voice_client import rms as speech_rms

RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms
FRAME_SECONDS = FRAME_SAMPLES / RATE
TIME_BASE = fractions.Fraction(1, RATE)
SILENT_LEVEL = 127  # RFC 6464: -127 dBov, what aiortc's sender puts on an all-zero frame
LEAD_IN_SECONDS = 0.1
TAIL_SECONDS = 0.2


@dataclass(frozen=True)
class Utterance:
    """A WAV as Opus packets of 20 ms; `first_voiced` and `last_voiced` index the first and
    last with speech in them (webrtcvad, mode 2 at 16 kHz, on the clean WAV)."""

    packets: tuple[bytes, ...]
    last_voiced: int
    first_voiced: int = 0

    @property
    def seconds(self) -> float:
        return len(self.packets) * FRAME_SECONDS


def encode_utterance(wav: bytes, noise_db: float | None = None) -> Utterance:
    """`noise_db`: mixed into steady pink noise that many dB under the speech."""
    pcm = decode_to_pcm(wav, RATE)
    pcm = _zeros(LEAD_IN_SECONDS) + pcm + _zeros(TAIL_SECONDS)
    pcm += bytes(-len(pcm) % (FRAME_SAMPLES * 2))
    if noise_db is not None:
        speech = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        level = speech_rms(speech) / 10 ** (noise_db / 20)
        pcm = pcm16(speech + pink_noise(speech.size / RATE, level, seed=7))
    packets = _encode(pcm)
    speech16 = decode_to_pcm(wav, 16_000)
    vad = webrtcvad.Vad(2)
    frame16 = 320 * 2
    voiced = [
        i
        for i in range(len(speech16) // frame16)
        if vad.is_speech(speech16[i * frame16 : (i + 1) * frame16], 16_000)
    ]
    if not voiced:
        raise ValueError("no speech in the WAV")
    lead_frames = round(LEAD_IN_SECONDS / FRAME_SECONDS)
    return Utterance(tuple(packets), lead_frames + voiced[-1], lead_frames + voiced[0])


def silence_packet() -> bytes:
    """A steady-state Opus packet of 20 ms of silence."""
    return _encode(_zeros(1.0))[-1]


def noise_bed(wav: bytes, noise_db: float, seconds: float = 10.0) -> tuple[bytes, ...]:
    """Pink noise `noise_db` under the speech of `wav`, as Opus packets to loop between
    utterances (what a caller next to a fan sends while silent)."""
    speech = np.frombuffer(decode_to_pcm(wav, RATE), dtype="<i2").astype(np.float64)
    level = speech_rms(speech) / 10 ** (noise_db / 20)
    return tuple(_encode(pcm16(pink_noise(seconds, level, seed=3))))


def _zeros(seconds: float) -> bytes:
    return bytes(round(seconds * RATE) * 2)


def _encode(pcm: bytes) -> list[bytes]:
    encoder = OpusEncoder()
    out: list[bytes] = []
    samples = np.frombuffer(pcm, dtype="<i2")
    for start in range(0, len(samples), FRAME_SAMPLES):
        chunk = samples[start : start + FRAME_SAMPLES].reshape(1, -1)
        frame = AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = start
        frame.time_base = TIME_BASE
        payloads, _ = encoder.encode(frame)
        out.extend(payloads)
    return out


@dataclass
class Playing:
    utterance: Utterance
    index: int = 0
    first_voiced_sent: asyncio.Future[float] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    last_voiced_sent: asyncio.Future[float] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Microphone(MediaStreamTrack):
    """Pre-encoded Opus, one packet every 20 ms on the monotonic clock; silence (or a
    noise bed, looped) between utterances."""

    kind = "audio"

    def __init__(self, silence: bytes, bed: tuple[bytes, ...] = ()) -> None:
        super().__init__()
        self._silence = silence
        self._bed = bed
        self._playing: Playing | None = None
        self._start: float | None = None
        self._pts = 0
        self._frames = 0

    def say(self, utterance: Utterance) -> Playing:
        """Speak `utterance`; its futures are the monotonic times its first and last voiced
        packets left."""
        self._playing = Playing(utterance)
        return self._playing

    async def recv(self) -> Packet:  # type: ignore[override]
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            self._pts += FRAME_SAMPLES
            due = self._start + self._pts / RATE
            if due > now:
                await asyncio.sleep(due - now)
        self._frames += 1
        payload = self._bed[self._frames % len(self._bed)] if self._bed else self._silence
        playing = self._playing
        if playing is not None:
            payload = playing.utterance.packets[playing.index]
            if playing.index == playing.utterance.first_voiced:
                playing.first_voiced_sent.set_result(time.monotonic())
            if playing.index == playing.utterance.last_voiced:
                playing.last_voiced_sent.set_result(time.monotonic())
            playing.index += 1
            if playing.index >= len(playing.utterance.packets):
                self._playing = None
        packet = Packet(payload)
        packet.pts = self._pts
        packet.time_base = TIME_BASE
        return packet


@dataclass(frozen=True, slots=True)
class Arrival:
    at: float  # monotonic: when the packet reached this process
    seq: int
    timestamp: int  # RTP
    sound: bool


def carries_sound(packet: RtpPacket) -> bool:
    """Frames the server encodes itself carry their level (127 = digital silence); the
    pre-encoded ones (`server.voice.opus`) carry none, and silence is its 3-byte packet."""
    level = packet.extensions.audio_level
    if level is not None:
        return bool(level[1] < SILENT_LEVEL)
    return packet.payload != SERVER_SILENCE


@dataclass
class ArrivalLog:
    """The AI's RTP packets as they arrived."""

    arrivals: list[Arrival] = field(default_factory=list)

    def add(self, at: float, packet: RtpPacket) -> None:
        sound = carries_sound(packet)
        self.arrivals.append(Arrival(at, packet.sequence_number, packet.timestamp, sound))

    def first_sound_after(self, since: float) -> float | None:
        for arrival in self.arrivals:
            if arrival.at > since and arrival.sound:
                return arrival.at
        return None

    def last_sound(self) -> float | None:
        for arrival in reversed(self.arrivals):
            if arrival.sound:
                return arrival.at
        return None

    def silent_from(self, since: float, quiet: float) -> float | None:
        """When the AI's sound stopped after `since` (the first packet of a stretch of at
        least `quiet` seconds without sound); None if it never did, or was not sounding
        at `since`."""
        after = [a for a in self.arrivals if a.at > since - 0.06]
        if not after or not any(a.sound for a in after[:4]):
            return None  # not talking when the caller started: no barge-in to time
        stop: float | None = None
        for arrival in after:
            if arrival.sound:
                stop = None
            elif stop is None:
                stop = arrival.at
            elif arrival.at - stop >= quiet:
                return stop
        return None

    def quiet_for(self, seconds: float, now: float) -> bool:
        last = self.last_sound()
        return last is None or now - last >= seconds


@dataclass
class Punctuality:
    """The AI's packets as they reached this caller, against their schedule (their RTP
    timestamps), as a receiver's jitter buffer of `buffer_ms` would see them. The schedule
    starts at the best transit time seen (the earliest a packet could be played); a packet
    later than `buffer_ms` behind it is an underrun (the listener hears a gap), after which
    the buffer refills (the schedule restarts from that packet). A sequence number never
    received is lost. Arrival times are this process's: its own delays count too (the
    server's own figures come from its log)."""

    packets: int = 0
    underruns: int = 0
    lost: int = 0
    max_late_ms: float = 0.0

    @classmethod
    def of(cls, arrivals: list[Arrival], buffer_ms: float) -> Punctuality:
        result = cls()
        if not arrivals:
            return result
        first_seq, first_ts = arrivals[0].seq, arrivals[0].timestamp
        baseline: float | None = None
        seen: set[int] = set()
        highest = 0
        for arrival in arrivals:
            # unwrap 16-bit sequence numbers and 32-bit timestamps against the first packet
            seq_n = (arrival.seq - first_seq) % 65536
            ts_n = (arrival.timestamp - first_ts) % 2**32
            seen.add(seq_n)
            highest = max(highest, seq_n)
            transit = arrival.at - ts_n / RATE
            if baseline is None or transit < baseline:
                baseline = transit
            late_ms = (transit - baseline) * 1000
            result.max_late_ms = max(result.max_late_ms, late_ms)
            if late_ms > buffer_ms:
                result.underruns += 1
                baseline = transit
        result.packets = len(arrivals)
        result.lost = highest + 1 - len(seen)
        return result


class BenchCaller:
    """One call, placed and driven as the call page does."""

    def __init__(self, base_url: str, http: aiohttp.ClientSession, number: int) -> None:
        self.base_url = base_url
        self.http = http
        self.peer_id = f"bench-caller-{number}"
        self.sio = socketio.AsyncClient(reconnection=False)
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.mic: Microphone | None = None
        self.heard = ArrivalLog()
        self.responses: list[tuple[float, dict[str, Any]]] = []  # ai-audio-response
        self.interrupted: list[float] = []  # ai-audio-interrupted arrivals
        self.errors: list[dict[str, Any]] = []
        self.call: dict[str, Any] = {}
        self.media_started: float | None = None
        self._answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._responded = asyncio.Event()

    async def dial(self, silence: bytes, timeout: float = 30, bed: tuple[bytes, ...] = ()) -> None:
        async with asyncio.timeout(timeout):
            await self._api("GET", "/api/v1/calls/config")
            self.call = (
                await self._api("POST", "/api/v1/calls", {"callerNumber": "010-1234-5678"})
            )["call"]
            session_id = self.call["sessionId"]
            peer = {"sessionId": session_id, "peerId": self.peer_id}
            self.sio.on("answer", self._on_answer, namespace="/signaling")
            self.sio.on("ai-audio-response", self._on_audio_response, namespace="/signaling")
            self.sio.on("error", self.errors.append, namespace="/signaling")
            self.sio.on(
                "ai-audio-interrupted",
                lambda _: self.interrupted.append(time.monotonic()),
                namespace="/signaling",
            )
            await self.sio.connect(self.base_url, namespaces=["/signaling"], wait_timeout=10)
            await self.sio.emit(
                "join-session", {**peer, "callId": self.call["id"]}, namespace="/signaling"
            )
            self.mic = Microphone(silence, bed)
            self.pc.addTrack(self.mic)
            with host_addresses([LOOPBACK]):  # aioice leaves 127.0.0.1 out otherwise
                await self.pc.setLocalDescription(await self.pc.createOffer())
            offer = {"type": "offer", "sdp": self.pc.localDescription.sdp}
            await self.sio.emit("offer", {**peer, "offer": offer}, namespace="/signaling")
            # aiortc puts every candidate in the SDP; the page ends its trickle with null
            await self.sio.emit(
                "ice-candidate", {**peer, "candidate": None}, namespace="/signaling"
            )
            answer = await self._answer
            await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
            self._observe_incoming_rtp()
            try:
                await self._api("POST", f"/api/v1/calls/{self.call['id']}/connect")
            except RuntimeError:
                pass  # the offer already moved the call on, as the page tolerates
            await self._connected()
            self.media_started = time.monotonic()

    async def say(self, utterance: Utterance) -> float:
        """Speak; returns when the last voiced frame left (monotonic time)."""
        assert self.mic is not None
        return await self.mic.say(utterance).last_voiced_sent

    def start_saying(self, utterance: Utterance) -> Playing:
        assert self.mic is not None
        return self.mic.say(utterance)

    def interruptions(self, since: float) -> int:
        return sum(1 for at in self.interrupted if at > since)

    async def reply_heard(self, since: float, quiet: float, timeout: float) -> float | None:
        """Wait until an `ai-audio-response` came after `since` and the AI's track has then
        been silent for `quiet` seconds; the arrival time of its first sound, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = time.monotonic()
            answered = any(at > since for at, _ in self.responses)
            first_sound = self.heard.first_sound_after(since)
            if answered and first_sound is not None and self.heard.quiet_for(quiet, now):
                return first_sound
            await asyncio.sleep(0.05)
        return None

    async def hang_up(self) -> None:
        try:
            if self.call:
                await self._api("POST", f"/api/v1/calls/{self.call['id']}/end")
        except Exception:
            pass  # a call that never connected cannot be ENDED; leaving still closes it
        try:
            if self.sio.connected and self.call:
                await self.sio.emit(
                    "leave-session",
                    {"sessionId": self.call["sessionId"], "peerId": self.peer_id},
                    namespace="/signaling",
                )
                await self.sio.disconnect()
        finally:
            await self.pc.close()
            if self.mic is not None:
                self.mic.stop()

    async def _api(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        async with self.http.request(method, self.base_url + path, json=body) as response:
            data = await response.json()
        if not data.get("success"):
            raise RuntimeError(f"{method} {path}: {data.get('error')}")
        return dict(data["data"])

    async def _on_answer(self, data: dict[str, Any]) -> None:
        if not self._answer.done():
            self._answer.set_result(data["answer"])

    async def _on_audio_response(self, data: dict[str, Any]) -> None:
        self.responses.append((time.monotonic(), data))
        self._responded.set()

    def _observe_incoming_rtp(self) -> None:
        """Time every packet of the AI's track as it arrives, and do not decode it: the
        load generator needs the timing and level only (saves a decoder per call)."""
        heard = self.heard

        async def observe(packet: RtpPacket, arrival_time_ms: int) -> None:
            heard.add(time.monotonic(), packet)

        for receiver in self.pc.getReceivers():
            if receiver.track is not None and receiver.track.kind == "audio":
                receiver._handle_rtp_packet = observe  # type: ignore[method-assign]

    async def _connected(self) -> None:
        if self.pc.connectionState == "connected":
            return
        changed = asyncio.Event()
        self.pc.on("connectionstatechange", changed.set)
        while self.pc.connectionState != "connected":
            if self.pc.connectionState in ("failed", "closed"):
                raise RuntimeError(f"media {self.pc.connectionState}")
            changed.clear()
            await changed.wait()
