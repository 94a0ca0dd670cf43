"""CONTRACT §2 `/signaling` over real sockets: joining, relaying, leaving, errors."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from models.calls import Call
from server.keys import VOICE_CALLS
from server.texts import CALL_FINISHED, CALL_NOT_FOUND, invalid_field
from tests.conftest import LiveServer, make_settings, serve
from tests.support.sio import RecordingClient
from tests.support.voice_client import Caller
from tests.support.waiting import until

BROWSER_CANDIDATE = {
    "candidate": "candidate:842163049 1 udp 1677729535 127.0.0.1 50000 typ host generation 0",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
    "usernameFragment": "abcd",
}


async def place_call(live: LiveServer) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{live.url}/api/v1/calls", json={"callerNumber": "01012345678"}) as response,
    ):
        assert response.status == 201
        body = await response.json()
    return dict(body["data"]["call"])


async def status_is(call_id: str, status: str) -> bool:
    return (await Call.get(id=call_id)).status == status


async def client(live: LiveServer) -> RecordingClient:
    c = RecordingClient("/signaling")
    await c.connect(live.url)
    return c


@pytest.fixture
async def pair(any_server: LiveServer) -> AsyncIterator[tuple[dict[str, Any], Any, Any]]:
    """A call and two peers in its session: `a` joined first, then `b`."""
    call = await place_call(any_server)
    a, b = await client(any_server), await client(any_server)
    await a.call("join-session", {"sessionId": call["sessionId"], "peerId": "a"})
    await b.call(
        "join-session", {"sessionId": call["sessionId"], "peerId": "b", "callId": call["id"]}
    )
    yield call, a, b
    for c in (a, b):
        await c.close()
    # the last peer gone, the call is hung up (FAILED: no media ever flowed); waited for so
    # the hang-up is not cut off by the server's shutdown
    await until(lambda: status_is(call["id"], "FAILED"), what="the call to be hung up")


async def test_join_answers_the_joiner_and_tells_the_others(
    pair: tuple[dict[str, Any], RecordingClient, RecordingClient],
) -> None:
    call, a, b = pair
    assert await a.next("joined-session") == {"sessionId": call["sessionId"], "peerId": "a"}
    assert await b.next("joined-session") == {"sessionId": call["sessionId"], "peerId": "b"}
    assert await a.next("peer-joined") == {"peerId": "b"}
    assert await b.nothing("peer-joined")


async def test_answer_and_candidates_are_relayed_to_the_other_peers(
    pair: tuple[dict[str, Any], RecordingClient, RecordingClient],
) -> None:
    call, a, b = pair
    answer = {"type": "answer", "sdp": "v=0\r\n"}
    ack = await a.call("answer", {"sessionId": call["sessionId"], "peerId": "a", "answer": answer})
    assert ack == {"sessionId": call["sessionId"], "peerId": "a"}
    assert await b.next("answer") == {"peerId": "a", "answer": answer}
    await a.emit(
        "ice-candidate",
        {"sessionId": call["sessionId"], "peerId": "a", "candidate": BROWSER_CANDIDATE},
    )
    assert await b.next("ice-candidate") == {"peerId": "a", "candidate": BROWSER_CANDIDATE}
    await a.emit(
        "ice-candidate", {"sessionId": call["sessionId"], "peerId": "a", "candidate": None}
    )
    assert await b.next("ice-candidate") == {"peerId": "a", "candidate": None}
    assert await a.nothing("answer") and await a.nothing("ice-candidate")


async def test_leaving_and_dropping_are_told_to_the_others(
    pair: tuple[dict[str, Any], RecordingClient, RecordingClient],
    any_server: LiveServer,
) -> None:
    call, a, b = pair
    assert await a.next("peer-joined") == {"peerId": "b"}
    leave = {"sessionId": call["sessionId"], "peerId": "b"}
    assert await b.call("leave-session", leave) == leave
    assert await a.next("peer-left") == {"peerId": "b"}
    assert await b.call("leave-session", leave) == leave  # idempotent
    c = await client(any_server)
    await c.call("join-session", {"sessionId": call["sessionId"], "peerId": "c"})
    assert await a.next("peer-joined") == {"peerId": "c"}
    await c.sio.eio.disconnect(abort=True)  # the socket drops without leaving
    assert await a.next("peer-disconnected") == {"peerId": "c"}


@pytest.mark.parametrize(
    ("event", "payload", "message"),
    [
        ("join-session", {"sessionId": "no-such-session", "peerId": "p"}, CALL_NOT_FOUND),
        ("join-session", {"sessionId": "", "peerId": "p"}, invalid_field("sessionId")),
        ("join-session", "not an object", invalid_field("payload")),
        ("offer", {"sessionId": "s", "peerId": "p", "offer": {"type": "offer", "sdp": "x"}},
         CALL_NOT_FOUND),
        ("ice-candidate", {"sessionId": "s", "peerId": "p", "candidate": None}, CALL_NOT_FOUND),
    ],
)  # fmt: skip
async def test_bad_requests_get_the_contract_error(
    server: LiveServer, event: str, payload: Any, message: str
) -> None:
    c = await client(server)
    try:
        assert await c.call(event, payload) == {"error": {"message": message}}
        assert await c.next("error") == {"message": message}
    finally:
        await c.close()


# parsed, answered, then refused by aiortc's own check of the answer (found by the fuzzer)
EMPTY_MID = "\r\n".join(
    [
        "v=0",
        "o=- 4005560757 4005560757 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "m=audio 37757 UDP/TLS/RTP/SAVPF 96",
        "c=IN IP4 127.0.0.1",
        "a=sendrecv",
        "a=mid",
        "a=rtcp-mux",
        "a=rtpmap:96 opus/48000/2",
        "a=candidate:1 1 udp 2130706431 127.0.0.1 37757 typ host",
        "a=end-of-candidates",
        "a=ice-ufrag:Bmzq",
        "a=ice-pwd:kKNR8ApuANp0PqfQ0ikwmE",
        "a=fingerprint:sha-256 62:73:33:4F:A3:35:B1:BD:09:A4:2F:B0:B8:E9:47:02:95:9D:91:B3:"
        "E7:C0:9F:0F:E6:B4:A2:BE:D5:DA:75:1E",
        "a=setup:actpass",
        "",
    ]
)


async def test_wrong_call_id_bad_candidate_and_bad_sdp_are_refused(server: LiveServer) -> None:
    call = await place_call(server)
    other = await place_call(server)
    c = await client(server)
    session = call["sessionId"]
    try:
        refused = await c.call(
            "join-session", {"sessionId": session, "peerId": "p", "callId": other["id"]}
        )
        assert refused == {"error": {"message": CALL_NOT_FOUND}}
        await c.call("join-session", {"sessionId": session, "peerId": "p", "callId": call["id"]})
        bad = {**BROWSER_CANDIDATE, "candidate": "candidate:garbage"}
        reply = await c.call(
            "ice-candidate", {"sessionId": session, "peerId": "p", "candidate": bad}
        )
        assert reply == {"error": {"message": invalid_field("candidate")}}
        no_media = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        for sdp in ("not sdp at all", no_media, EMPTY_MID):
            offer = {"sessionId": session, "peerId": "p", "offer": {"type": "offer", "sdp": sdp}}
            assert await c.call("offer", offer) == {
                "error": {"message": invalid_field("offer.sdp")}
            }
        assert len(server.app[VOICE_CALLS]) == 0
        # the server keeps serving the same socket
        assert await c.call("leave-session", {"sessionId": session, "peerId": "p"}) == {
            "sessionId": session,
            "peerId": "p",
        }
    finally:
        await c.close()


@pytest.fixture
async def loopback_server(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LiveServer]:
    monkeypatch.setenv("RTC_ICE_LOOPBACK", "1")
    monkeypatch.setenv("VOICE_GREETING_DELAY_MS", "60000")  # these tests need no greeting
    async with serve(make_settings(sqlite_url)) as live:
        yield live


def without_candidates(sdp: str) -> tuple[str, list[str]]:
    lines = sdp.split("\r\n")
    candidates = [line[2:] for line in lines if line.startswith("a=candidate:")]
    kept = [line for line in lines if not re.match(r"a=(candidate:|end-of-candidates)", line)]
    return "\r\n".join(kept), candidates


async def test_trickled_candidates_reach_the_ai_peer_and_the_call_connects(
    loopback_server: LiveServer,
) -> None:
    """The browser's way: an offer without candidates, candidates trickled around it (one
    even before it): none is dropped, media flows, and a dropped socket ends the call."""
    call = await place_call(loopback_server)
    session = call["sessionId"]
    c = await client(loopback_server)
    caller = Caller()
    try:
        await c.call("join-session", {"sessionId": session, "peerId": "p"})
        sdp, candidates = without_candidates((await caller.offer())["sdp"])
        assert candidates
        ice = [{"candidate": line, "sdpMid": "0", "sdpMLineIndex": 0} for line in candidates]
        await c.emit("ice-candidate", {"sessionId": session, "peerId": "p", "candidate": ice[0]})
        await c.emit(
            "offer", {"sessionId": session, "peerId": "p", "offer": {"type": "offer", "sdp": sdp}}
        )
        for candidate in [*ice[1:], None]:
            await c.emit(
                "ice-candidate", {"sessionId": session, "peerId": "p", "candidate": candidate}
            )
        answered = await c.next("answer", timeout=10)
        assert answered["peerId"] == "ai-server"
        assert answered["answer"]["type"] == "answer"
        await caller.accept(answered["answer"])
        ai_call = loopback_server.app[VOICE_CALLS].get(session, "p")
        assert ai_call is not None
        transport = ai_call.peer._pc.getTransceivers()[0].receiver.transport.transport
        remote = {(x.ip, x.port) for x in transport.getRemoteCandidates()}
        assert remote == {(line.split()[4], int(line.split()[5])) for line in candidates}
        await until(lambda: ai_call.media_flowed, timeout=20)
        await until(lambda: status_is(call["id"], "IN_PROGRESS"), timeout=20)
        # this instance carries the call: its heartbeat keeps it from being ended as stale
        assert loopback_server.app[VOICE_CALLS].call_ids() == {call["id"]}
        await c.sio.eio.disconnect(abort=True)  # the caller's socket drops
        await until(lambda: status_is(call["id"], "ENDED"), timeout=20)
        assert ai_call.closed and len(loopback_server.app[VOICE_CALLS]) == 0
    finally:
        await caller.close()
        await c.close()


async def test_ending_the_call_over_rest_closes_the_ai_peer(loopback_server: LiveServer) -> None:
    call = await place_call(loopback_server)
    session = call["sessionId"]
    c = await client(loopback_server)
    caller = Caller()
    try:
        await c.call("join-session", {"sessionId": session, "peerId": "p", "callId": call["id"]})
        offer = {"sessionId": session, "peerId": "p", "offer": await caller.offer()}
        answered = await c.call("offer", offer, timeout=10)
        assert answered == await c.next("answer")
        await caller.accept(answered["answer"])
        registry = loopback_server.app[VOICE_CALLS]
        ai_call = registry.get(session, "p")
        assert ai_call is not None
        await until(lambda: status_is(call["id"], "IN_PROGRESS"), timeout=20)
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{loopback_server.url}/api/v1/calls/{call['id']}/end") as response,
        ):
            assert response.status == 200
            assert (await response.json())["data"]["call"]["status"] == "ENDED"
        assert ai_call.closed and len(registry) == 0
        # a finished call takes no new offer
        refused = await c.call("offer", offer)
        assert refused == {"error": {"message": CALL_FINISHED}}
    finally:
        await caller.close()
        await c.close()
