"""`/signaling` (CONTRACT §2): every event's payloads, junk SDP and junk ICE candidates.

SDP and candidates are drawn two ways: text of any kind, and a real browser-like offer (or
candidate line) with a few lines dropped, doubled, cut, swapped or garbled; those get past
the first checks and into aiortc's parser, some even make an offer it answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from server.texts import CALL_FINISHED, CALL_NOT_FOUND, invalid_field
from tests.support.fuzz import junk
from tests.support.fuzz.chat import Event
from tests.support.fuzz.shapes import Case, Spec, not_ints, not_strings, objects, strings
from tests.support.fuzz.sio import FuzzClient

PEER = "p"
EVENTS = ("join-session", "offer", "answer", "ice-candidate", "leave-session")
AI_PEER = "ai-server"


@dataclass
class Home:
    """The call the fuzzing socket has joined (a new one once the fuzzing has ended it)."""

    session_id: str
    call_id: str


def _mutate_lines(lines: list[str], edits: list[tuple[str, int, str]]) -> list[str]:
    out = list(lines)
    for op, at, text in edits:
        if not out:
            break
        i = at % len(out)
        if op == "drop":
            del out[i]
        elif op == "dup":
            out.insert(i, out[i])
        elif op == "swap":
            j = (i + 1) % len(out)
            out[i], out[j] = out[j], out[i]
        elif op == "cut":
            out[i] = out[i][: len(text) % (len(out[i]) + 1)]
        elif op == "number":
            out[i] = re.sub(r"\d+", str(len(text) * 7919 - 3), out[i], count=1)
        elif op == "replace":
            out[i] = text
        else:  # "insert"
            out.insert(i, text)
    return out


_EDITS = st.lists(
    st.tuples(
        st.sampled_from(["drop", "dup", "swap", "cut", "number", "replace", "insert"]),
        st.integers(0, 10_000),
        st.one_of(
            junk.text,
            st.sampled_from(
                [
                    "m=audio 9 UDP/TLS/RTP/SAVPF 0",
                    "m=video 9 UDP/TLS/RTP/SAVPF 96",
                    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
                    "a=rtpmap:111 opus/48000/2",
                    "a=rtpmap:0",
                    "a=fingerprint:sha-256 00",
                    "a=setup:junk",
                    "a=ice-ufrag:",
                    "a=group:BUNDLE 7",
                    "a=mid:",
                    "c=IN IP4 999.1.1.1",
                    "a=ssrc:x",
                    "a=fmtp:111 minptime",
                ]
            ),
        ),
    ),
    min_size=1,
    max_size=4,
)


def sdps(real: str) -> st.SearchStrategy[str]:
    """SDP text: a real offer slightly broken, or anything at all."""
    lines = real.split("\r\n")
    mutated = st.builds(
        lambda edits, sep: sep.join(_mutate_lines(lines, edits)),
        _EDITS,
        st.sampled_from(["\r\n", "\n"]),
    )
    return st.one_of(
        mutated.filter(lambda sdp: 0 < len(sdp) <= 100_000 and junk.sendable(sdp)),
        strings(1, 2000),
        junk.huge_text.filter(lambda t: len(t) <= 100_000 and junk.sendable(t)),
        st.lists(junk.text, max_size=8)
        .map(lambda ls: "v=0\r\n" + "\r\n".join(ls))
        .filter(junk.sendable),
    )


def candidate_lines(real: str) -> st.SearchStrategy[str]:
    """`candidate:` lines: a real one with fields changed, or anything."""
    bits = real.split()
    field_values = st.one_of(
        junk.text,
        st.sampled_from(
            ["0", "1", "2", "99999999999", "-1", "udp", "tcp", "UDP", "host", "srflx", "relay",
             "prflx", "typ", "raddr", "rport", "::1", "fe80::1%eth0", "999.1.1.1", "a.local",
             "localhost", "0.0.0.0", "65536", "generation", "tcptype", "active"]
        ),
    )  # fmt: skip
    changed = st.builds(
        lambda edits, prefix: prefix + " ".join(_replace_fields(bits, edits)),
        st.lists(st.tuples(st.integers(0, 20), field_values), min_size=1, max_size=3),
        st.sampled_from(["", "a=", "candidate:", "a=candidate:"]),
    )
    return st.one_of(changed, strings(0, 1000), st.just(""), st.just(real)).filter(
        lambda line: len(line) <= 1000 and junk.sendable(line)
    )


def _replace_fields(bits: list[str], edits: list[tuple[int, str]]) -> list[str]:
    out = list(bits)
    for at, value in edits:
        if at < len(out):
            out[at] = value
        else:
            out.append(value)
    return [b for b in out if b != ""] if len(out) > 8 else out


def event_specs(home: Home, real_sdp: str, real_candidate: str) -> dict[str, tuple[Spec, ...]]:
    session = Spec(
        "sessionId",
        st.one_of(st.builds(lambda: home.session_id), strings(1, 255)),
        not_strings(1, 255),
    )
    peer = Spec("peerId", st.one_of(st.just(PEER), strings(1, 255)), not_strings(1, 255))

    def description(kind: str) -> Spec:
        return Spec(
            kind,
            st.nothing(),
            junk.not_objects(binary=True),
            fields=(
                Spec(
                    "type",
                    st.sampled_from(["offer", "answer"]),
                    junk.json_values(binary=True).filter(lambda v: v not in ("offer", "answer")),
                ),
                Spec("sdp", sdps(real_sdp), not_strings(1, 100_000)),
            ),
        )

    candidate = Spec(
        "candidate",
        st.none(),
        junk.not_objects(binary=True).filter(lambda v: v is not None),
        required=False,
        fields=(
            Spec(
                "candidate", candidate_lines(real_candidate), not_strings(0, 1000), required=False
            ),
            Spec(
                "sdpMid",
                st.one_of(st.none(), st.sampled_from(["0", "1", "audio"]), strings(0, 64)),
                not_strings(0, 64, nullable=True),
                required=False,
            ),
            Spec(
                "sdpMLineIndex",
                st.one_of(st.none(), st.integers(0, 3), st.integers(0, 1000)),
                not_ints(0, 1000, nullable=True),
                required=False,
            ),
            Spec(
                "usernameFragment",
                st.one_of(st.none(), strings(0, 256)),
                not_strings(0, 256, nullable=True),
                required=False,
            ),
        ),
    )
    return {
        "join-session": (
            session,
            peer,
            Spec(
                "callId",
                st.one_of(st.none(), st.builds(lambda: home.call_id), strings(1, 36)),
                not_strings(1, 36, nullable=True),
                required=False,
            ),
        ),
        "offer": (session, peer, description("offer")),
        "answer": (session, peer, description("answer")),
        "ice-candidate": (session, peer, candidate),
        "leave-session": (session, peer),
    }


def events(home: Home, real_sdp: str, real_candidate: str) -> st.SearchStrategy[Event]:
    specs = event_specs(home, real_sdp, real_candidate)
    weights = {"offer": 3, "ice-candidate": 3}  # the events with the most to parse
    return st.one_of(
        *(
            st.builds(
                Event,
                st.just(name),
                st.one_of(
                    objects(specs[name]),
                    st.builds(Case, st.binary(max_size=64), st.just("payload")),
                ),
            )
            for name in EVENTS
            for _ in range(weights.get(name, 1))
        )
    )


def offers(home: Home, real_sdp: str) -> st.SearchStrategy[Event]:
    """Well-formed `offer` events around a fuzzed SDP: deep into aiortc's parser."""
    lines = real_sdp.split("\r\n")
    mutated = st.builds(lambda edits: "\r\n".join(_mutate_lines(lines, edits)), _EDITS).filter(
        lambda sdp: 0 < len(sdp) <= 100_000 and junk.sendable(sdp)
    )
    return st.builds(
        lambda sdp: Event(
            "offer",
            Case(
                {
                    "sessionId": home.session_id,
                    "peerId": PEER,
                    "offer": {"type": "offer", "sdp": sdp},
                },
                None,
            ),
        ),
        st.one_of(mutated, mutated, sdps(real_sdp)),
    )


def candidates(home: Home, real_candidate: str) -> st.SearchStrategy[Event]:
    """Well-formed `ice-candidate` events around a fuzzed candidate (the AI peer is live)."""
    init = st.fixed_dictionaries(
        {"candidate": candidate_lines(real_candidate)},
        optional={
            "sdpMid": st.one_of(st.none(), st.sampled_from(["0", "1", ""]), strings(0, 64)),
            "sdpMLineIndex": st.one_of(st.none(), st.integers(0, 1000)),
            "usernameFragment": st.one_of(st.none(), strings(0, 256)),
        },
    )
    return st.builds(
        lambda candidate: Event(
            "ice-candidate",
            Case({"sessionId": home.session_id, "peerId": PEER, "candidate": candidate}, None),
        ),
        init,
    )


@dataclass
class SignalingOracle:
    client: FuzzClient
    home: Home
    joined: dict[str, str] = field(default_factory=dict)  # sessionId -> peerId
    answered_offers: int = 0

    async def check(self, event: Event) -> None:
        case = event.case
        if not case.valid:
            await self.client.answered(event.name, event.data, invalid_field(str(case.broken)))
            return
        p: dict[str, Any] = case.payload
        session, peer = p["sessionId"], p["peerId"]
        if event.name == "join-session":
            await self._join(event, p)
        elif event.name == "leave-session":
            await self._leave(event, session, peer)
        elif session not in self.joined:
            await self.client.answered(event.name, event.data, CALL_NOT_FOUND)
        elif peer != self.joined[session]:
            await self.client.answered(event.name, event.data, invalid_field("peerId"))
        elif event.name == "offer":
            await self._offer(event, p)
        elif event.name == "answer":
            await self._answer(event, p)
        else:
            await self._candidate(event, p)

    async def _join(self, event: Event, p: dict[str, Any]) -> None:
        call_id = p.get("callId")
        if p["sessionId"] != self.home.session_id or call_id not in (None, self.home.call_id):
            await self.client.answered(event.name, event.data, CALL_NOT_FOUND)
            return
        reply = await self.client.call(event.name, event.data)
        if reply == {"error": {"message": CALL_FINISHED}}:  # an AI peer of it hung up
            await self.client.expect_error(CALL_FINISHED)
            return
        assert reply == {"sessionId": p["sessionId"], "peerId": p["peerId"]}, (event, reply)
        self.joined[p["sessionId"]] = p["peerId"]

    async def _leave(self, event: Event, session: str, peer: str) -> None:
        if session in self.joined and peer != self.joined[session]:
            await self.client.answered(event.name, event.data, invalid_field("peerId"))
            return
        reply = await self.client.answered(event.name, event.data, None)
        assert reply == {"sessionId": session, "peerId": peer}, (event, reply)
        self.joined.pop(session, None)

    async def _offer(self, event: Event, p: dict[str, Any]) -> None:
        if p["offer"]["type"] != "offer":
            await self.client.answered(event.name, event.data, invalid_field("offer.type"))
            return
        reply = await self.client.call(event.name, event.data)
        refusals = (invalid_field("offer.sdp"), CALL_FINISHED)
        if isinstance(reply, dict) and "error" in reply:
            assert reply["error"]["message"] in refusals, (event, reply)
            await self.client.expect_error(reply["error"]["message"])
            return
        assert reply["peerId"] == AI_PEER and reply["answer"]["type"] == "answer", reply
        assert reply["answer"]["sdp"].startswith("v=0"), reply
        self.answered_offers += 1

    async def _answer(self, event: Event, p: dict[str, Any]) -> None:
        if p["answer"]["type"] != "answer":
            await self.client.answered(event.name, event.data, invalid_field("answer.type"))
            return
        reply = await self.client.answered(event.name, event.data, None)
        assert reply == {"sessionId": p["sessionId"], "peerId": p["peerId"]}, reply

    async def _candidate(self, event: Event, p: dict[str, Any]) -> None:
        reply = await self.client.call(event.name, event.data)
        if reply == {"error": {"message": invalid_field("candidate")}}:
            assert p.get("candidate") is not None, (event, reply)  # null is end of candidates
            await self.client.expect_error(invalid_field("candidate"))
            return
        assert reply == {"sessionId": p["sessionId"], "peerId": p["peerId"]}, (event, reply)
