"""Property-based fuzzing of every event of every protocol (issue #5, part 5).

One live server per protocol (SQLite, the offline `local` provider). Hypothesis draws the
payloads (see `tests/support/fuzz/`): mostly malformed, some valid. For each the contract's answer
is checked exactly; every few hundred payloads, and at the end, a valid request must still
be answered; and no unhandled exception may reach the logs or the event loop.

Run with `-s` to see the count: `fuzz: N payloads (...)`. FUZZ_SEED=<n> replays a run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import strategies as st
from yarl import URL

from models.calls import Call
from namespaces.signaling import SignalingNamespace
from server.calls.status import FINAL, CallStatus
from server.keys import SIO
from server.rest.rooms import SID
from server.texts import COUNSELING_INVALID_SESSION, GREETING, invalid_field
from tests.conftest import LiveServer, make_settings, serve
from tests.support.fuzz import chat, frames, packets, rest, signaling, sockets
from tests.support.fuzz.driver import Crashes, Fuzzer, watching_for_crashes
from tests.support.fuzz.sio import FuzzClient
from tests.support.sio import RecordingClient
from tests.support.voice_client import Caller
from tests.support.waiting import until

# a campaign is CPU-bound: on a loaded 2-core machine it outlasts the default 120 s
pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(300)]

TARGET = 10_000  # payloads over the whole module (the floor)
# payloads per campaign: their sum is the module's total
QUOTAS = {
    "chat events": 3000,
    "chat unknown events": 400,
    "chat raw packets": 600,
    "chat handshakes": 100,
    "chat websocket frames": 150,
    "signaling events": 2500,
    "signaling unknown events": 200,
    "signaling offers": 300,
    "signaling candidates": 400,
    "agent frames": 1000,
    "agent paths": 150,
    "room frames": 1000,
    "room queries": 150,
    "counseling frames": 1000,
    "counseling paths": 150,
    "rest requests": 1500,
}
assert sum(QUOTAS.values()) >= TARGET

TRIED: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def summary() -> Iterator[None]:
    yield
    total = sum(TRIED.values())
    parts = ", ".join(f"{name}={n}" for name, n in TRIED.items())
    print(f"\nfuzz: {total} payloads ({parts})")


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveServer]:
    settings = make_settings(
        f"sqlite://{tmp_path / 'fuzz.sqlite3'}",
        rtc_ice_loopback=True,  # an offer that parses is answered on 127.0.0.1, nowhere else
        voice_greeting_delay_ms=600_000,
        stun_server_url="",
    )
    async with serve(settings) as server:
        yield server


@pytest.fixture
async def fuzzer() -> Fuzzer:
    return Fuzzer(TRIED)


@pytest.fixture
async def crashes(fuzzer: Fuzzer) -> AsyncIterator[Crashes]:
    with watching_for_crashes(fuzzer.loop) as seen:
        yield seen
    assert not seen.describe(), "\n".join(seen.describe())


def ran(*campaigns: str) -> None:
    for name in campaigns:
        assert TRIED[name] >= QUOTAS[name], (name, TRIED[name])


async def test_chat_namespace(live: LiveServer, fuzzer: Fuzzer, crashes: Crashes) -> None:
    client = FuzzClient("/chat")
    await client.connect(live.url)
    try:
        home = (await client.answered("join-chat", {"userId": chat.USER}, None))["sessionId"]
        oracle = chat.ChatOracle(client, home, joined={home}, owners={home: chat.USER})
        await fuzzer.run(
            "chat events",
            chat.events(home),
            oracle.check,
            examples=QUOTAS["chat events"],
            alive=oracle.rejoin_home,
        )
        await fuzzer.run(
            "chat unknown events",
            chat.unknown_events(),
            oracle.check_unknown,
            examples=QUOTAS["chat unknown events"],
            alive=oracle.rejoin_home,
        )
        assert not client.errors, client.errors
        await fuzzer.run(
            "chat raw packets",
            packets.raw_packets(),
            lambda packet: packets.send_raw(client, packet),
            examples=QUOTAS["chat raw packets"],
            alive=oracle.rejoin_home,
        )
        await fuzzer.run(
            "chat handshakes",
            packets.handshakes(),
            lambda auth: packets.connect_with(live.url, auth),
            examples=QUOTAS["chat handshakes"],
            alive=oracle.rejoin_home,
        )
        sockets = set(live.app[SIO].eio.sockets)
        await fuzzer.run(
            "chat websocket frames",
            frames.writes,
            lambda pieces: frames.send_frames(live.url, pieces),
            examples=QUOTAS["chat websocket frames"],
            alive=oracle.rejoin_home,
        )
        await until(lambda: set(live.app[SIO].eio.sockets) <= sockets, what="sockets let go")
        await a_chat_turn_is_answered(live)
    finally:
        await client.close()
    ran(
        "chat events",
        "chat unknown events",
        "chat raw packets",
        "chat handshakes",
        "chat websocket frames",
    )


async def a_chat_turn_is_answered(live: LiveServer) -> None:
    """After the fuzzing, a new client has a whole conversation turn."""
    c = RecordingClient()
    await c.connect(live.url)
    try:
        joined = await c.call("join-chat", {"userId": "after-fuzz"})
        assert (await c.next("ai-message"))["content"] == GREETING
        await c.emit("send-message", {"sessionId": joined["sessionId"], "message": "노인 일자리"})
        assert (await c.next("message-sent"))["content"] == "노인 일자리"
        assert "1. " in (await c.next("ai-message", timeout=30))["content"]
        assert not c.of("error")
    finally:
        await c.close()


async def test_signaling_namespace(live: LiveServer, fuzzer: Fuzzer, crashes: Crashes) -> None:
    call = await place_call(live)
    home = signaling.Home(call["sessionId"], call["id"])
    real_sdp, real_candidate = await a_browser_offer()
    client = FuzzClient("/signaling")
    await client.connect(live.url)
    oracle = signaling.SignalingOracle(client, home)

    async def alive() -> None:
        """A valid join is answered (in a new call once the fuzzing has ended this one)."""
        if CallStatus((await Call.get(id=home.call_id)).status) in FINAL:
            fresh = await place_call(live)
            home.session_id, home.call_id = fresh["sessionId"], fresh["id"]
        joining = {"sessionId": home.session_id, "peerId": signaling.PEER}
        assert await client.answered("join-session", joining, None) == joining
        oracle.joined[home.session_id] = signaling.PEER
        end_of_candidates = {**joining, "candidate": None}
        assert await client.answered("ice-candidate", end_of_candidates, None) == joining

    try:
        await alive()
        await fuzzer.run(
            "signaling events",
            signaling.events(home, real_sdp, real_candidate),
            oracle.check,
            examples=QUOTAS["signaling events"],
            alive=alive,
        )
        await fuzzer.run(
            "signaling unknown events",
            chat.unknown_events(SignalingNamespace, signaling.EVENTS),
            lambda named: chat.ignored(client, named),
            examples=QUOTAS["signaling unknown events"],
            alive=alive,
        )
        await fuzzer.run(
            "signaling offers",
            signaling.offers(home, real_sdp),
            oracle.check,
            examples=QUOTAS["signaling offers"],
            alive=alive,
        )
        await alive()
        offer = {"type": "offer", "sdp": real_sdp}
        joined = {"sessionId": home.session_id, "peerId": signaling.PEER}
        answered = await client.answered("offer", {**joined, "offer": offer}, None)
        assert answered["answer"]["type"] == "answer"  # a live AI peer takes the candidates
        await fuzzer.run(
            "signaling candidates",
            signaling.candidates(home, real_candidate),
            oracle.check,
            examples=QUOTAS["signaling candidates"],
            alive=alive,
        )
        assert not client.errors, client.errors
    finally:
        await client.close()
    print(f"\nsignaling: {oracle.answered_offers} fuzzed offers answered by the AI peer")
    ran("signaling events", "signaling unknown events", "signaling offers", "signaling candidates")


async def place_call(live: LiveServer) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{live.url}/api/v1/calls", json={"callerNumber": "01012345678"}) as response,
    ):
        assert response.status == 201
        return dict((await response.json())["data"]["call"])


async def a_browser_offer() -> tuple[str, str]:
    """A real offer's SDP (aiortc, as a browser would send it) and one of its candidates."""
    caller = Caller()
    try:
        sdp = (await caller.offer())["sdp"]
    finally:
        await caller.close()
    candidates = [line[2:] for line in sdp.split("\r\n") if line.startswith("a=candidate:")]
    return sdp, candidates[0]


async def test_agent_chat_socket(live: LiveServer, fuzzer: Fuzzer, crashes: Crashes) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{live.url}/ws/chat/fuzz-agent") as ws:
            oracle = sockets.AgentOracle(sockets.Socket(ws))

            async def alive() -> None:
                await oracle.check('{"type": "ping"}')

            await fuzzer.run(
                "agent frames",
                sockets.agent_frames(),
                oracle.check,
                examples=QUOTAS["agent frames"],
                alive=alive,
            )

        async def ping(socket: sockets.Socket) -> None:
            await socket.send('{"type": "ping"}')
            assert await socket.next() == {"type": "pong"}

        async def connect(drawn: tuple[str, list[tuple[str, str]]]) -> None:
            client_id, query = drawn
            url = sockets.path_url(live.url, "/ws/chat/", client_id).with_query(query)
            # aiohttp's `{client_id}` is `[^{}/]+` over the path with only %2F kept encoded:
            # no braces, nor nothing at all (a 404 at the handshake; nothing to serve)
            if client_id == "" or "{" in client_id or "}" in client_id:
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(url)
                assert refused.value.status == 404
                return
            valid = 0 < len(client_id) <= 255 and client_id.isprintable()
            refusal = None if valid else {"type": "error", "message": invalid_field("client_id")}
            await sockets.connect_and_probe(http, url, refusal, ping)

        await fuzzer.run(
            "agent paths",
            st.tuples(sockets.ids.filter(lambda i: i != "fuzz-agent"), sockets.agent_queries()),
            connect,
            examples=QUOTAS["agent paths"],
        )
        # a whole answer, on a client of its own (the fuzzing one may be over its rate limit)
        async with http.ws_connect(f"{live.url}/ws/chat/after-fuzz") as ws:
            after = sockets.AgentOracle(sockets.Socket(ws))
            chat_frame = {
                "type": "chat",
                "message": "노인 복지 서비스 알려줘",
                "agent_name": "복지상담사",
                "project_id": "project_001",
            }
            await after.check(sockets.json.dumps(chat_frame))
            assert after.turns == 1
    print(f"\nagent: {oracle.turns} fuzzed messages answered by the model")
    ran("agent frames", "agent paths")


async def test_room_socket(live: LiveServer, fuzzer: Fuzzer, crashes: Crashes) -> None:
    hello = sockets.RoomFrame('{"hd": {"event": "chat.message"}, "bd": {"text": "hello"}}', None)
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{live.url}/v1/session/chat?sid=fuzz_room") as ws:
            oracle = sockets.RoomOracle(sockets.Socket(ws))
            await fuzzer.run(
                "room frames",
                sockets.room_frames(),
                oracle.check,
                examples=QUOTAS["room frames"],
                alive=lambda: oracle.check(hello),
            )

        async def echo(socket: sockets.Socket) -> None:
            await sockets.RoomOracle(socket).check(hello)

        async def connect(query: list[tuple[str, str]]) -> None:
            sid = next((value for key, value in query if key == "sid"), "")
            url = URL(f"{live.url}/v1/session/chat").with_query(query)
            refusal = None if SID.fullmatch(sid) else sockets.room_error(invalid_field("sid"))
            await sockets.connect_and_probe(http, url, refusal, echo)

        await fuzzer.run(
            "room queries", sockets.room_queries(), connect, examples=QUOTAS["room queries"]
        )
        # the model still answers a room
        async with http.ws_connect(f"{live.url}/v1/session/chat?sid=after_fuzz") as ws:
            socket = sockets.Socket(ws)
            ask = {"hd": {"event": "llm.invoke", "role": "A"}, "bd": {"text": "노인 일자리"}}
            await socket.send(sockets.json.dumps(ask))
            assert (await socket.next())["bd"]["text"] == "노인 일자리"  # the question, echoed
            while (frame := await socket.next())["hd"]["event"] == "llm.streaming":
                pass
            assert (frame["hd"]["event"], frame["hd"]["role"]) == ("llm.response", "llm")
            assert frame["bd"]["text"]
    print(f"\nroom: {oracle.echoed} fuzzed frames stored and echoed")
    ran("room frames", "room queries")


async def test_counseling_socket(live: LiveServer, fuzzer: Fuzzer, crashes: Crashes) -> None:
    ask = sockets.json.dumps(
        {"type": "request_ai_response", "data": {"message": "요즘 힘들어요", "emotion": "sad"}}
    )
    async with aiohttp.ClientSession() as http:
        answered = Counter[str]()

        async def a_reply(socket: sockets.Socket) -> None:
            await (counselor := sockets.CounselingOracle(socket)).check(ask)
            answered["n"] += counselor.replies

        async def alive() -> None:
            """A valid request on a session of its own (the fuzzed one hits its rate limit)."""
            url = f"{live.url}/ws/session/alive_{len(answered)}_{answered['n']}"
            async with http.ws_connect(url) as ws:
                await a_reply(sockets.Socket(ws))

        async with http.ws_connect(f"{live.url}/ws/session/fuzz_session") as ws:
            oracle = sockets.CounselingOracle(sockets.Socket(ws))
            await fuzzer.run(
                "counseling frames",
                sockets.counseling_frames(),
                oracle.check,
                examples=QUOTAS["counseling frames"],
                alive=alive,
            )

        async def connect(session_id: str) -> None:
            url = sockets.path_url(live.url, "/ws/session/", session_id)
            if "\n" in session_id:  # the route's `.*` stops at a newline: a 404 handshake
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(url)
                assert refused.value.status == 404
                return
            valid = SID.fullmatch(session_id) is not None
            refusal = None if valid else sockets.counseling_error(COUNSELING_INVALID_SESSION)
            await sockets.connect_and_probe(http, url, refusal, _ignored)

        await fuzzer.run(
            "counseling paths", sockets.ids, connect, examples=QUOTAS["counseling paths"]
        )
    assert answered["n"] >= 1
    print(f"\ncounseling: {oracle.replies} fuzzed requests answered by the model")
    ran("counseling frames", "counseling paths")


async def _ignored(socket: sockets.Socket) -> None:
    """A served counseling socket: an unknown `type` is ignored, a wrong one answered."""
    await sockets.CounselingOracle(socket).check('{"type": "vad_metrics", "data": {}}')


async def test_rest_routes(live: LiveServer, fuzzer: Fuzzer, crashes: Crashes) -> None:
    chat_client = RecordingClient()
    await chat_client.connect(live.url)
    try:
        session_id = (await chat_client.call("join-chat", {"userId": "rest"}))["sessionId"]
    finally:
        await chat_client.close()
    call = await place_call(live)
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{live.url}/v1/session/chat?sid=fuzz_room") as ws:
            await ws.send_str('{"hd": {"event": "chat.message"}, "bd": {"text": "hi"}}')
            await ws.receive(timeout=10)
        known = rest.Known(session_id=session_id, call_id=call["id"], room="fuzz_room")

        async def alive() -> None:
            await rest.send(http, live.url, rest.HEALTH)
            placed = await place_call(live)
            assert placed["status"] == "RINGING"

        await fuzzer.run(
            "rest requests",
            rest.requests(known),
            lambda request: rest.send(http, live.url, request),
            examples=QUOTAS["rest requests"],
            alive=alive,
        )
    ran("rest requests")
