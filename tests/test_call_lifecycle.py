"""No call dangles: every path of a call ends ENDED or FAILED, on SQLite and MySQL.

Hang-up before media (`POST .../end` on RINGING / CONNECTING), a caller who leaves or drops
with or without an AI peer, and calls nobody joins or that never get media within
`CALL_SETUP_TIMEOUT_SECONDS`, expired by a task that is safe on many instances.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from models.calls import Call
from server.calls.errors import illegal_transition
from server.calls.expiry import expire_once
from server.calls.service import CallService
from server.calls.status import CallStatus
from server.chat import clock
from server.keys import CALLS, VOICE_CALLS
from tests.conftest import LiveServer, make_settings, serve
from tests.support.sio import RecordingClient
from tests.support.voice_client import Caller
from tests.support.waiting import until
from tests.test_calls_rest import ISO_MS, api, call_json, place_call


async def stored(call_id: str) -> Call:
    return await Call.get(id=call_id)


async def is_over(call_id: str, status: str) -> bool:
    call = await stored(call_id)
    return call.status == status and call.ended_at is not None and call.duration is not None


async def signaling(live: LiveServer) -> RecordingClient:
    c = RecordingClient("/signaling")
    await c.connect(live.url)
    return c


@pytest.fixture
async def quick_expiry(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LiveServer]:
    """Calls expire 1 s after their last change (looked for every 0.25 s)."""
    monkeypatch.setenv("RTC_ICE_LOOPBACK", "1")
    async with serve(make_settings(database_url, call_setup_timeout_seconds=1)) as live:
        yield live


async def test_hanging_up_before_media_fails_the_call_never_409(any_server: LiveServer) -> None:
    async with api(any_server) as http:
        ringing = await place_call(http)
        status, answer = await call_json(http, "POST", f"/api/v1/calls/{ringing['id']}/end")
        assert status == 200
        done = answer["data"]["call"]
        assert done["status"] == "FAILED" and done["duration"] == 0
        assert ISO_MS.match(done["endedAt"]) and "connectedAt" not in done

        connecting = await place_call(http)
        path = f"/api/v1/calls/{connecting['id']}"
        await call_json(http, "POST", f"{path}/connect")
        status, answer = await call_json(http, "POST", f"{path}/end")
        assert (status, answer["data"]["call"]["status"]) == (200, "FAILED")
        assert await is_over(connecting["id"], "FAILED")

        # a call already over is refused, as the status machine says; nothing changes
        status, again = await call_json(http, "POST", f"{path}/end")
        message = illegal_transition(CallStatus.FAILED, CallStatus.ENDED)
        assert (status, again) == (409, {"success": False, "error": {"message": message}})
        assert (await call_json(http, "GET", path))[1]["data"]["call"] == answer["data"]["call"]

        talking = await place_call(http)
        await any_server.app[CALLS].media_flowing(talking["id"])
        status, answer = await call_json(http, "POST", f"/api/v1/calls/{talking['id']}/end")
        assert (status, answer["data"]["call"]["status"]) == (200, "ENDED")
        assert isinstance(answer["data"]["call"]["duration"], int)


async def test_caller_leaving_or_dropping_without_an_ai_peer_fails_the_call(
    any_server: LiveServer,
) -> None:
    async with api(any_server) as http:
        left, dropped, garbage = [await place_call(http) for _ in range(3)]
    c = await signaling(any_server)
    try:
        # joins and leaves without offering
        await c.call("join-session", {"sessionId": left["sessionId"], "peerId": "p"})
        await c.call("leave-session", {"sessionId": left["sessionId"], "peerId": "p"})
        assert await is_over(left["id"], "FAILED")
        # offers garbage (refused, but the call is CONNECTING by then), then leaves
        await c.call("join-session", {"sessionId": garbage["sessionId"], "peerId": "p"})
        bad = {"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"}
        refused = await c.call(
            "offer", {"sessionId": garbage["sessionId"], "peerId": "p", "offer": bad}
        )
        assert "error" in refused
        assert (await stored(garbage["id"])).status == "CONNECTING"
        await c.call("leave-session", {"sessionId": garbage["sessionId"], "peerId": "p"})
        assert await is_over(garbage["id"], "FAILED")
        # joins, then the socket drops
        await c.call("join-session", {"sessionId": dropped["sessionId"], "peerId": "p"})
        await c.sio.eio.disconnect(abort=True)
        await until(lambda: is_over(dropped["id"], "FAILED"), what="the dropped call to fail")
    finally:
        await c.close()


async def test_the_call_stays_while_another_peer_is_in_it(any_server: LiveServer) -> None:
    async with api(any_server) as http:
        call = await place_call(http)
    a, b = await signaling(any_server), await signaling(any_server)
    try:
        for client, peer in ((a, "a"), (b, "b")):
            await client.call("join-session", {"sessionId": call["sessionId"], "peerId": peer})
        await b.call("leave-session", {"sessionId": call["sessionId"], "peerId": "b"})
        assert (await stored(call["id"])).status == "RINGING"
        await a.call("leave-session", {"sessionId": call["sessionId"], "peerId": "a"})
        assert await is_over(call["id"], "FAILED")
    finally:
        await a.close()
        await b.close()


@pytest.mark.slow  # waits for the expiry
async def test_calls_nobody_joins_or_without_media_expire(quick_expiry: LiveServer) -> None:
    calls = quick_expiry.app[CALLS]
    async with api(quick_expiry) as http:
        ringing = await place_call(http)
        connecting = await place_call(http)
        await call_json(http, "POST", f"/api/v1/calls/{connecting['id']}/connect")
        talking = await place_call(http)
        await calls.media_flowing(talking["id"])
        for call in (ringing, connecting):
            await until(lambda c=call: is_over(c["id"], "FAILED"), what="the call to expire")
            _, answer = await call_json(http, "GET", f"/api/v1/calls/{call['id']}")
            assert answer["data"]["call"]["duration"] == 0
        # a call in progress is no set-up: it stays
        await asyncio.sleep(1.5)
        assert (await stored(talking["id"])).status == "IN_PROGRESS"


@pytest.mark.slow  # waits for the expiry
async def test_expiring_a_connecting_call_closes_its_ai_peer(quick_expiry: LiveServer) -> None:
    """An offer answered, but no media ever (the caller never applies the answer)."""
    async with api(quick_expiry) as http:
        call = await place_call(http)
    c = await signaling(quick_expiry)
    caller = Caller()
    try:
        await c.call("join-session", {"sessionId": call["sessionId"], "peerId": "p"})
        offer = {"sessionId": call["sessionId"], "peerId": "p", "offer": await caller.offer()}
        await c.call("offer", offer, timeout=10)
        registry = quick_expiry.app[VOICE_CALLS]
        ai_call = registry.get(call["sessionId"], "p")
        assert ai_call is not None
        await until(lambda: is_over(call["id"], "FAILED"), what="the call to expire")
        await until(lambda: ai_call.closed and len(registry) == 0, what="the AI peer to close")
    finally:
        await caller.close()
        await c.close()


async def test_expiry_is_safe_on_many_instances(any_server: LiveServer) -> None:
    """Two instances expiring the same calls at once: each call FAILS once, and its end
    listeners run once, on the instance that moved it."""
    first = any_server.app[CALLS]
    second = CallService()  # another instance's service over the same database
    told: list[tuple[str, str]] = []

    def listener(name: str) -> Any:
        async def on_end(call: Call) -> None:
            told.append((name, call.id))

        return on_end

    first.add_end_listener(listener("first"))
    second.add_end_listener(listener("second"))
    placed = [await first.create("01012345678") for _ in range(6)]
    old = clock.now() - timedelta(minutes=5)
    await Call.filter(id__in=[c.id for c in placed]).update(updated_at=old)
    counts = await asyncio.gather(expire_once(first, 120), expire_once(second, 120))
    assert sum(counts) == 6
    assert sorted(call_id for _, call_id in told) == sorted(c.id for c in placed)
    for call in placed:
        assert await is_over(call.id, "FAILED")
    # a fresh call is left alone
    fresh = await first.create("01012345678")
    assert await expire_once(first, 120) == 0
    assert (await stored(fresh.id)).status == "RINGING"
    # so is one in use over REST (`conversation/process` touches it)
    used = await first.create("01012345678")
    await Call.filter(id=used.id).update(updated_at=old)
    await first.touch(used.id)
    assert await expire_once(first, 120) == 0


async def test_calls_in_progress_whose_instance_died_end(any_server: LiveServer) -> None:
    """An instance carrying a call's media reports it alive; when none does for
    `CALL_STALE_SECONDS` (the instance died without hanging up), the call ENDS."""
    calls = any_server.app[CALLS]
    orphaned, carried = [await calls.create("01012345678") for _ in range(2)]
    for call in (orphaned, carried):
        await calls.media_flowing(call.id)
    old = clock.now() - timedelta(minutes=10)
    await Call.filter(id__in=[orphaned.id, carried.id]).update(updated_at=old)
    await calls.keep_alive([carried.id])  # its instance's heartbeat
    assert await expire_once(calls, 120, stale_seconds=300) == 1
    assert await is_over(orphaned.id, "ENDED")
    assert (await stored(carried.id)).status == "IN_PROGRESS"
    # a fresh call in progress is not stale
    assert await expire_once(calls, 120, stale_seconds=300) == 0
