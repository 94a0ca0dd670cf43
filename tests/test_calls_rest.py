"""Calls REST (§2.1) and the call status machine, on SQLite and MySQL."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from models.calls import Call
from server import db
from server.calls.errors import IllegalTransition
from server.calls.status import ALLOWED, CallStatus
from server.keys import CALLS
from tests.conftest import LiveServer, make_settings, postgres_columns, serve

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
NOT_FOUND = {"success": False, "error": {"message": "통화를 찾을 수 없습니다"}}


@asynccontextmanager
async def api(live: LiveServer) -> AsyncIterator[Any]:
    async with aiohttp.ClientSession(base_url=live.url) as http:
        yield http


async def call_json(http: Any, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    async with http.request(method, path, **kwargs) as resp:
        return resp.status, await resp.json()


async def place_call(http: Any, **body: Any) -> dict[str, Any]:
    status, answer = await call_json(
        http, "POST", "/api/v1/calls", json={"callerNumber": "010-1234-5678", **body}
    )
    assert status == 201, answer
    return answer["data"]["call"]


def invalid(field: str) -> dict[str, Any]:
    return {"success": False, "error": {"message": f"잘못된 요청입니다: {field}"}}


async def test_config_lists_googles_stun_servers_by_default(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STUN_SERVER_URL", raising=False)
    async with serve(make_settings(sqlite_url)) as live, api(live) as http:
        status, answer = await call_json(http, "GET", "/api/v1/calls/config")
    assert status == 200
    assert answer == {
        "success": True,
        "data": {
            "config": {
                "iceServers": [
                    {"urls": "stun:stun.l.google.com:19302"},
                    {"urls": "stun:stun1.l.google.com:19302"},
                    {"urls": "stun:stun2.l.google.com:19302"},
                ],
                "iceCandidatePoolSize": 10,
                "iceTransportPolicy": "all",
                "bundlePolicy": "max-bundle",
                "rtcpMuxPolicy": "require",
            }
        },
    }


@pytest.mark.parametrize(
    ("value", "urls"),
    [
        ("stun:stun.example.test:3478", ["stun:stun.example.test:3478"]),
        ("stun:a.test:1, stun:b.test:2", ["stun:a.test:1", "stun:b.test:2"]),
        ("", []),
    ],
)
async def test_config_follows_stun_server_url(sqlite_url: str, value: str, urls: list[str]) -> None:
    async with serve(make_settings(sqlite_url, stun_server_url=value)) as live, api(live) as http:
        _, answer = await call_json(http, "GET", "/api/v1/calls/config")
    assert answer["data"]["config"]["iceServers"] == [{"urls": u} for u in urls]


async def test_place_and_get_a_call(any_server: LiveServer) -> None:
    async with api(any_server) as http:
        call = await place_call(http)
        assert set(call) == {
            "id", "sessionId", "callerNumber", "status", "createdAt", "updatedAt"
        }  # fmt: skip
        assert call["status"] == "RINGING"
        assert call["callerNumber"] == "01012345678"
        assert uuid.UUID(call["id"]).version == 4
        assert uuid.UUID(call["sessionId"]).version == 4
        assert ISO_MS.match(call["createdAt"])
        status, answer = await call_json(http, "GET", f"/api/v1/calls/{call['id']}")
        assert status == 200
        assert answer == {"success": True, "data": {"call": call, "transcript": []}}

        other = await place_call(http, callerNumber="02 123 4567", receiverNumber="0311234567")
        assert other["callerNumber"] == "021234567" and other["receiverNumber"] == "0311234567"
        assert other["sessionId"] != call["sessionId"]

        # the call's session exists: its transcript is served by the chat REST route
        path = f"/api/v1/chat/sessions/{call['sessionId']}/messages"
        assert await call_json(http, "GET", path) == (200, {"messages": [], "next": None})

        for unknown in ("no-such-call", str(uuid.uuid4()), "x" * 300):
            assert await call_json(http, "GET", f"/api/v1/calls/{unknown}") == (404, NOT_FOUND)
            for action in ("connect", "end"):
                path = f"/api/v1/calls/{unknown}/{action}"
                assert await call_json(http, "POST", path) == (404, NOT_FOUND)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "callerNumber"),
        ({"callerNumber": None}, "callerNumber"),
        ({"callerNumber": 1012345678}, "callerNumber"),
        ({"callerNumber": ""}, "callerNumber"),
        ({"callerNumber": "12345678"}, "callerNumber"),  # too short
        ({"callerNumber": "1012345678"}, "callerNumber"),  # not starting with 0
        ({"callerNumber": "010123456789"}, "callerNumber"),  # 12 digits
        ({"callerNumber": "010-abcd-5678"}, "callerNumber"),
        ({"callerNumber": "+821012345678"}, "callerNumber"),
        ({"callerNumber": "01012345678", "receiverNumber": "123"}, "receiverNumber"),
        ({"callerNumber": "01012345678", "receiverNumber": 123}, "receiverNumber"),
    ],
)
async def test_place_call_validates_numbers(
    server: LiveServer, body: dict[str, Any], field: str
) -> None:
    async with api(server) as http:
        status, answer = await call_json(http, "POST", "/api/v1/calls", json=body)
    assert (status, answer) == (400, invalid(field))


async def test_place_call_rejects_bodies_that_are_not_objects(server: LiveServer) -> None:
    async with api(server) as http:
        for raw in ("not json", "[1, 2]", '"01012345678"', ""):
            status, answer = await call_json(
                http,
                "POST",
                "/api/v1/calls",
                data=raw,
                headers={"Content-Type": "application/json"},
            )
            assert (status, answer) == (400, invalid("body"))
        assert await Call.all().count() == 0
        # the server keeps serving
        await place_call(http)


async def test_a_call_from_ringing_to_ended(any_server: LiveServer) -> None:
    ended: list[str] = []

    async def on_end(call: Call) -> None:
        ended.append(call.status)

    calls = any_server.app[CALLS]
    calls.add_end_listener(on_end)
    async with api(any_server) as http:
        call = await place_call(http)
        path = f"/api/v1/calls/{call['id']}"
        status, answer = await call_json(http, "POST", f"{path}/connect")
        assert status == 200 and answer["data"]["call"]["status"] == "CONNECTING"
        # asked again (the documented page does, after its offer): no change, no error
        status, again = await call_json(http, "POST", f"{path}/connect")
        assert status == 200 and again["data"]["call"]["status"] == "CONNECTING"

        await calls.media_flowing(call["id"])  # what the voice layer does when media flows
        await calls.media_flowing(call["id"])  # idempotent
        _, answer = await call_json(http, "GET", path)
        assert answer["data"]["call"]["status"] == "IN_PROGRESS"
        assert ISO_MS.match(answer["data"]["call"]["connectedAt"])
        status, again = await call_json(http, "POST", f"{path}/connect")
        assert status == 200 and again["data"]["call"]["status"] == "IN_PROGRESS"

        status, answer = await call_json(http, "POST", f"{path}/end")
        assert status == 200
        done = answer["data"]["call"]
        assert done["status"] == "ENDED"
        assert ISO_MS.match(done["endedAt"]) and done["endedAt"] >= done["connectedAt"]
        assert isinstance(done["duration"], int) and done["duration"] >= 0
        assert ended == ["ENDED"]
        assert await call_json(http, "GET", path) == (
            200,
            {"success": True, "data": {"call": done, "transcript": []}},
        )


# what each service method moves a call to
METHOD_TARGET = {
    "connect": CallStatus.CONNECTING,
    "media_flowing": CallStatus.IN_PROGRESS,
    "end": CallStatus.ENDED,
    "fail": CallStatus.FAILED,
}
# requests that leave a call where it is instead of moving it: not transitions, not refused
NO_OPS = {
    ("connect", CallStatus.CONNECTING),
    ("connect", CallStatus.IN_PROGRESS),
    ("media_flowing", CallStatus.IN_PROGRESS),
}
# media_flowing on a RINGING call goes through CONNECTING: two allowed steps
THROUGH = {("media_flowing", CallStatus.RINGING)}


async def test_every_illegal_transition_is_refused(any_server: LiveServer) -> None:
    calls = any_server.app[CALLS]
    refused = 0
    async with api(any_server) as http:
        for source in CallStatus:
            for method, target in METHOD_TARGET.items():
                call = await place_call(http)
                await Call.filter(id=call["id"]).update(status=source.value)
                legal = target in ALLOWED[source] or (method, source) in NO_OPS | THROUGH
                if method in ("connect", "end"):  # the REST routes
                    status, answer = await call_json(
                        http, "POST", f"/api/v1/calls/{call['id']}/{method}"
                    )
                    if legal:
                        assert status == 200, (source, method, answer)
                    else:
                        message = (
                            f"통화 상태를 {source.value}에서 {target.value}(으)로 바꿀 수 없습니다"
                        )
                        assert (status, answer) == (
                            409,
                            {"success": False, "error": {"message": message}},
                        ), (source, method)
                elif legal:
                    await getattr(calls, method)(call["id"])
                else:
                    with pytest.raises(IllegalTransition):
                        await getattr(calls, method)(call["id"])
                stored = (await Call.get(id=call["id"])).status
                if legal:
                    expected = source if (method, source) in NO_OPS else target
                    assert stored == expected, (source, method)
                else:
                    refused += 1
                    assert stored == source, (source, method)  # refused: unchanged
    # every pair not in the machine: 6 sources x 4 targets, minus the 6 allowed moves,
    # the 3 no-ops and the one pass-through
    assert refused == 6 * 4 - 6 - len(NO_OPS) - len(THROUGH)


async def test_hang_up_ends_fails_or_leaves_a_call(any_server: LiveServer) -> None:
    calls = any_server.app[CALLS]
    expected = {
        CallStatus.INITIATING: CallStatus.FAILED,
        CallStatus.RINGING: CallStatus.FAILED,
        CallStatus.CONNECTING: CallStatus.FAILED,
        CallStatus.IN_PROGRESS: CallStatus.ENDED,
        CallStatus.ENDED: CallStatus.ENDED,
        CallStatus.FAILED: CallStatus.FAILED,
    }
    for source, result in expected.items():
        call = await calls.create("01012345678")
        await Call.filter(id=call.id).update(status=source.value)
        assert (await calls.hang_up(call.id)).status == result
        stored = await Call.get(id=call.id)
        assert stored.status == result
        if source not in (CallStatus.ENDED, CallStatus.FAILED):
            assert stored.ended_at is not None


async def test_racing_requests_move_a_call_once(any_server: LiveServer) -> None:
    calls = any_server.app[CALLS]
    async with api(any_server) as http:
        call = await place_call(http)
        connects = await asyncio.gather(
            *(call_json(http, "POST", f"/api/v1/calls/{call['id']}/connect") for _ in range(5))
        )
        assert {(s, a["data"]["call"]["status"]) for s, a in connects} == {(200, "CONNECTING")}
        await asyncio.gather(*(calls.media_flowing(call["id"]) for _ in range(3)))
        results = await asyncio.gather(
            *(call_json(http, "POST", f"/api/v1/calls/{call['id']}/end") for _ in range(5))
        )
    assert sorted(status for status, _ in results) == [200, 409, 409, 409, 409]


async def test_calls_are_documented_and_cors_enabled(server: LiveServer) -> None:
    async with api(server) as http:
        _, doc = await call_json(http, "GET", "/api/docs/openapi.json")
        paths = {
            ("/api/v1/calls/config", "get"),
            ("/api/v1/calls", "post"),
            ("/api/v1/calls/{callId}/connect", "post"),
            ("/api/v1/calls/{callId}/end", "post"),
            ("/api/v1/calls/{callId}", "get"),
            ("/api/v1/calls/conversation/process", "post"),
        }
        for path, method in paths:
            assert doc["paths"][path][method]["tags"] == ["calls"], path
        process = doc["paths"]["/api/v1/calls/conversation/process"]["post"]
        assert "multipart/form-data" in process["requestBody"]["content"]
        create = doc["paths"]["/api/v1/calls"]["post"]
        assert "application/json" in create["requestBody"]["content"]

        preflight = {
            "Origin": "http://localhost:5500",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        }
        async with http.options("/api/v1/calls", headers=preflight) as resp:
            assert resp.status == 200
            assert resp.headers["Access-Control-Allow-Origin"] in ("*", "http://localhost:5500")
        origin = {"Origin": "http://localhost:5500"}
        async with http.post(
            "/api/v1/calls", json={"callerNumber": "01012345678"}, headers=origin
        ) as resp:
            assert resp.status == 201
            assert resp.headers["Access-Control-Allow-Origin"] in ("*", "http://localhost:5500")


MYSQL_CALL_COLUMNS = {
    "id": ("varchar", 36, "NO"),
    "session_id": ("varchar", 255, "NO"),
    "caller_number": ("varchar", 20, "NO"),
    "receiver_number": ("varchar", 20, "YES"),
    "status": ("varchar", 20, "NO"),
    "created_at": ("datetime", None, "NO"),
    "updated_at": ("datetime", None, "NO"),
    "connected_at": ("datetime", None, "YES"),
    "ended_at": ("datetime", None, "YES"),
    "duration": ("int", None, "YES"),
}


async def test_calls_table_columns(any_server: LiveServer) -> None:
    conn = db.connection()
    if any_server.settings.database_url.startswith("sqlite"):
        _, rows = await conn.execute_query("PRAGMA table_info(calls)")
        assert {r["name"] for r in rows} == set(MYSQL_CALL_COLUMNS)
        return
    if conn.capabilities.dialect == "postgres":  # types: tests/test_postgres.py
        assert set(await postgres_columns("calls")) == set(MYSQL_CALL_COLUMNS)
        return
    _, rows = await conn.execute_query(
        "SELECT column_name AS c, data_type AS d, character_maximum_length AS n, "
        "datetime_precision AS p, column_key AS k, is_nullable AS nullable "
        "FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'calls'"
    )
    found = {r["c"]: r for r in rows}
    assert set(found) == set(MYSQL_CALL_COLUMNS)
    for column, (data_type, length, nullable) in MYSQL_CALL_COLUMNS.items():
        row = found[column]
        assert (row["d"], row["nullable"]) == (data_type, nullable), column
        if length is not None:
            assert row["n"] == length, column
        if data_type == "datetime":
            assert row["p"] == 6, column
    assert found["id"]["k"] == "PRI"
    assert found["session_id"]["k"] == "UNI"
