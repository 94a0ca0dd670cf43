"""Authentication and isolation with AUTH_SECRET (CONTRACT §7): every protocol needs a JWT,
and no user reaches another user's session, call, room, counseling session or agent client.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import jwt
import pytest
import socketio
from tortoise.exceptions import OperationalError

from models import ChatMessage
from models.owners import SessionOwner
from server import db, ownership
from server.ownership import Kind, claim
from server.texts import (
    AUTH_FAILED,
    AUTH_REQUIRED,
    SESSION_FORBIDDEN,
    SESSION_NOT_FOUND,
    TEMPORARY_FAILURE,
)
from tests.conftest import LiveServer, make_settings, serve
from tests.support.sio import RecordingClient

SECRET = "a-test-secret-long-enough-for-hs256-and-for-hs512-at-64-bytes-or-more"
WRONG_SECRET = "another-secret-long-enough-for-hs256-and-hs512-at-64-bytes-or-more"


def token(user: str | None = "alice", secret: str = SECRET, **claims: Any) -> str:
    body = {"sub": user, **claims} if user is not None else claims
    return jwt.encode(body, secret, algorithm="HS256")


def bearer(user: str = "alice", **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user, **claims)}"}


BAD_TOKENS = {
    "garbage": "not-a-jwt",
    "wrong secret": token(secret=WRONG_SECRET),
    "expired": token(exp=int(time.time()) - 60),
    "no user": token(None, role="user"),
    "HS512": jwt.encode({"sub": "alice"}, SECRET, algorithm="HS512"),
    "user id not a string": token(None, userId=42),
}


@pytest.fixture
async def secured(database_url: str) -> AsyncIterator[LiveServer]:
    async with serve(make_settings(database_url, auth_secret=SECRET)) as live:
        yield live


# -- Socket.IO -------------------------------------------------------------------------------


async def refusal(live: LiveServer, namespace: str, auth: Any, transport: str) -> str:
    """The message of the `connect_error` a connection attempt gets (it must get one)."""
    client = RecordingClient(namespace)
    errors: list[Any] = []
    refused = asyncio.Event()

    def on_error(data: Any) -> None:
        errors.append(data)
        refused.set()

    client.sio.on("connect_error", on_error, namespace=namespace)
    attempt = asyncio.create_task(client.connect(live.url, transport=transport, auth=auth))
    await asyncio.wait_for(refused.wait(), 10)
    # after a refusal the polling client waits for its long-poll to end: abort it instead
    reader = client.sio.eio.read_loop_task
    await client.sio.eio.disconnect(abort=True)
    if reader is not None:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await asyncio.wait_for(attempt, 10)
    assert len(errors) == 1, errors
    return str(errors[0]["message"])


async def sio_client(
    live: LiveServer, user: str | None = "alice", namespace: str = "/chat", **claims: Any
) -> RecordingClient:
    client = RecordingClient(namespace)
    await client.connect(live.url, auth={"token": token(user, **claims)})
    return client


@pytest.mark.parametrize("namespace", ["/chat", "/signaling"])
@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_socketio_needs_a_valid_token(
    secured: LiveServer, namespace: str, transport: str
) -> None:
    assert await refusal(secured, namespace, None, transport) == AUTH_REQUIRED
    assert await refusal(secured, namespace, {"token": 7}, transport) == AUTH_REQUIRED
    for name, bad in BAD_TOKENS.items():
        assert await refusal(secured, namespace, {"token": bad}, transport) == AUTH_FAILED, name
    client = RecordingClient(namespace)
    await client.connect(secured.url, transport=transport, auth={"token": token()})
    assert client.sio.connected
    await client.close()
    # a client that cannot send `auth` may send the token as a bearer header
    client = RecordingClient(namespace)
    headers = {"Authorization": f"Bearer {token()}"}
    await client.connect(secured.url, transport=transport, headers=headers)
    assert client.sio.connected
    await client.close()


async def test_the_users_id_comes_from_the_token(secured: LiveServer) -> None:
    alice = await sio_client(secured, "alice")
    joined = await alice.call("join-chat", {})  # no userId: the token's
    assert joined["userId"] == "alice"
    again = await alice.call("join-chat", {"userId": "alice", "sessionId": joined["sessionId"]})
    assert again["sessionId"] == joined["sessionId"]
    assert await alice.call("join-chat", {"userId": "mallory"}) == {
        "error": {"message": SESSION_FORBIDDEN}
    }
    await alice.close()
    # a token naming its user in `userId` (no `sub`) is as good
    carol = await sio_client(secured, None, userId="carol")
    assert (await carol.call("join-chat", {}))["userId"] == "carol"
    await carol.close()


async def test_nobody_reaches_another_users_chat_session(secured: LiveServer) -> None:
    alice = await sio_client(secured, "alice")
    session_id = (await alice.call("join-chat", {"userId": "alice"}))["sessionId"]
    await alice.next("ai-message")  # the greeting
    bob = await sio_client(secured, "bob")
    forbidden = {"error": {"message": SESSION_FORBIDDEN}}
    not_found = {"error": {"message": SESSION_NOT_FOUND}}
    # bob cannot join it, not even by claiming to be alice
    assert await bob.call("join-chat", {"sessionId": session_id}) == forbidden
    assert await bob.call("join-chat", {"userId": "alice", "sessionId": session_id}) == forbidden
    # and so cannot read, type into or write to it
    assert await bob.call("get-history", {"sessionId": session_id}) == not_found
    assert await bob.call("typing", {"sessionId": session_id, "isTyping": True}) == not_found
    assert await bob.call("send-message", {"sessionId": session_id, "message": "hi"}) == not_found
    assert await alice.nothing("user-typing") and not alice.of("message-sent")
    assert await ChatMessage.filter(session_id=session_id, sender="user").count() == 0

    url = f"{secured.url}/api/v1/chat/sessions/{session_id}/messages"
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            assert resp.status == 401 and await resp.json() == {"message": AUTH_REQUIRED}
        async with http.get(url, headers={"Authorization": "Bearer nonsense"}) as resp:
            assert resp.status == 401 and await resp.json() == {"message": AUTH_FAILED}
        async with http.get(url, headers={"Authorization": f"Basic {token()}"}) as resp:
            assert resp.status == 401 and await resp.json() == {"message": AUTH_REQUIRED}
        async with http.get(url, headers=bearer("bob")) as resp:
            assert resp.status == 403 and await resp.json() == {"message": SESSION_FORBIDDEN}
        async with http.get(url, headers=bearer("alice")) as resp:
            assert resp.status == 200
            assert [m["sender"] for m in (await resp.json())["messages"]] == ["assistant"]
        unknown = f"{secured.url}/api/v1/chat/sessions/nope/messages"
        async with http.get(unknown, headers=bearer("bob")) as resp:
            assert resp.status == 404
    # alice's own session still works for her
    sent = await alice.call("send-message", {"sessionId": session_id, "message": "안녕하세요"})
    assert sent["content"] == "안녕하세요"
    for client in (alice, bob):
        await client.close()


# -- calls REST and /signaling ---------------------------------------------------------------


def envelope(message: str) -> dict[str, Any]:
    return {"success": False, "error": {"message": message}}


async def test_a_call_belongs_to_its_creator(secured: LiveServer) -> None:
    base = f"{secured.url}/api/v1/calls"
    async with aiohttp.ClientSession() as http:
        body = {"callerNumber": "01012345678"}
        async with http.post(base, json=body) as resp:
            assert resp.status == 401 and await resp.json() == envelope(AUTH_REQUIRED)
        async with http.post(base, json=body, headers={"Authorization": "Bearer x"}) as resp:
            assert resp.status == 401 and await resp.json() == envelope(AUTH_FAILED)
        async with http.post(base, json=body, headers=bearer("alice")) as resp:
            assert resp.status == 201
            call = (await resp.json())["data"]["call"]
        call_url = f"{base}/{call['id']}"
        for method, path in (("GET", ""), ("POST", "/connect"), ("POST", "/end")):
            async with http.request(method, call_url + path) as resp:
                assert resp.status == 401, path
            async with http.request(method, call_url + path, headers=bearer("bob")) as resp:
                assert resp.status == 403 and await resp.json() == envelope(SESSION_FORBIDDEN)
        form = aiohttp.FormData()
        form.add_field("audio", b"RIFF....", filename="a.wav", content_type="audio/wav")
        form.add_field("callId", call["id"])
        process = f"{base}/conversation/process"
        async with http.post(process, data=form, headers=bearer("bob")) as resp:
            assert resp.status == 403 and await resp.json() == envelope(SESSION_FORBIDDEN)
        async with http.get(call_url, headers=bearer("alice")) as resp:
            assert resp.status == 200 and (await resp.json())["data"]["call"]["status"] == "RINGING"
        async with http.get(f"{base}/not-a-call", headers=bearer("alice")) as resp:
            assert resp.status == 404
        # the call's transcript is alice's too
        messages = f"{secured.url}/api/v1/chat/sessions/{call['sessionId']}/messages"
        async with http.get(messages, headers=bearer("alice")) as resp:
            assert resp.status == 200
        async with http.get(messages, headers=bearer("bob")) as resp:
            assert resp.status == 403
        # what stays public
        for path in ("/api/v1/calls/config", "/api/v1/health", "/api/docs", "/metrics"):
            async with http.get(secured.url + path) as resp:
                assert resp.status == 200, path
        async with http.get(secured.url + "/api/docs/openapi.json") as resp:
            doc = await resp.json()
        assert {"401", "403"} <= set(doc["paths"]["/api/v1/calls/{callId}"]["get"]["responses"])

    bob = await sio_client(secured, "bob", namespace="/signaling")
    join = {"sessionId": call["sessionId"], "peerId": "bob"}
    assert await bob.call("join-session", join) == {"error": {"message": SESSION_FORBIDDEN}}
    assert (await bob.next("error")) == {"message": SESSION_FORBIDDEN}
    offer = {**join, "offer": {"type": "offer", "sdp": "v=0"}}
    assert "error" in await bob.call("offer", offer)  # never joined: nothing to offer to
    alice = await sio_client(secured, "alice", namespace="/signaling")
    joined = await alice.call("join-session", {**join, "peerId": "alice"})
    assert joined == {"sessionId": call["sessionId"], "peerId": "alice"}
    for client in (alice, bob):
        await client.close()


# -- plain WebSockets ------------------------------------------------------------------------


def ws_url(live: LiveServer, path: str, user: str | None = None, **claims: Any) -> str:
    url = live.url.replace("http://", "ws://") + path
    if user is not None:
        url += ("&" if "?" in url else "?") + "token=" + token(user, **claims)
    return url


@asynccontextmanager
async def websocket(url: str) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        yield ws


async def refused(url: str) -> tuple[dict[str, Any], int | None]:
    """The error frame a refused socket gets, and the code it is then closed with."""
    async with websocket(url) as ws:
        frame = await ws.receive(timeout=10)
        assert frame.type is aiohttp.WSMsgType.TEXT, frame
        closing = await ws.receive(timeout=10)
        assert closing.type is aiohttp.WSMsgType.CLOSE, closing
        return json.loads(frame.data), ws.close_code


def room_error(text: str) -> dict[str, Any]:
    return {"hd": {"event": "error"}, "bd": {"text": text}}


def counseling_error(text: str) -> dict[str, Any]:
    return {"type": "ai_stream_error", "data": {"error": text}}


def agent_error(text: str) -> dict[str, Any]:
    return {"type": "error", "message": text}


async def test_websockets_need_a_valid_token(secured: LiveServer) -> None:
    endpoints = [
        ("/v1/session/chat?sid=room1", room_error),
        ("/ws/session/counsel1", counseling_error),
        ("/ws/chat/client1", agent_error),
    ]
    for path, error in endpoints:
        if path.startswith("/ws/chat"):  # waits for a first `auth` frame: send something else
            async with websocket(ws_url(secured, path)) as ws:
                await ws.send_json({"type": "ping"})
                assert await ws.receive_json(timeout=10) == error(AUTH_REQUIRED)
                assert (await ws.receive(timeout=10)).type is aiohttp.WSMsgType.CLOSE
                assert ws.close_code == 4401
        else:
            assert await refused(ws_url(secured, path)) == (error(AUTH_REQUIRED), 4401)
        for name, bad in BAD_TOKENS.items():
            url = ws_url(secured, path) + ("&" if "?" in path else "?") + f"token={bad}"
            assert await refused(url) == (error(AUTH_FAILED), 4401), (path, name)
    assert await SessionOwner.all().count() == 0  # a refused token claims nothing


async def test_a_room_is_its_owners_and_invitees(secured: LiveServer) -> None:
    path = "/v1/session/chat?sid=room1"
    async with websocket(ws_url(secured, path, "alice")) as alice:
        assert await refused(ws_url(secured, path, "bob")) == (
            room_error(SESSION_FORBIDDEN),
            4403,
        )
        # carol's token invites her to room1: she shares the room with alice
        async with websocket(ws_url(secured, path, "carol", rooms=["room1"])) as carol:
            await carol.send_json(
                {"hd": {"event": "chat.message", "role": "B"}, "bd": {"text": "안녕"}}
            )
            for ws in (alice, carol):
                frame = await ws.receive_json(timeout=10)
                assert frame["bd"] == {"text": "안녕"} and frame["hd"]["role"] == "B"
        # an invitation to another room opens nothing here
        other = ws_url(secured, path, "dave", rooms=["room2"])
        assert (await refused(other))[1] == 4403

    history = f"{secured.url}/api/chat/history/room1"
    async with aiohttp.ClientSession() as http:
        async with http.get(history) as resp:
            assert resp.status == 401 and await resp.json() == {"message": AUTH_REQUIRED}
        async with http.get(history, headers=bearer("bob")) as resp:
            assert resp.status == 403 and await resp.json() == {"message": SESSION_FORBIDDEN}
        for reader in (bearer("alice"), bearer("carol", rooms=["room1"])):
            async with http.get(history, headers=reader) as resp:
                assert resp.status == 200 and len((await resp.json())["messages"]) == 1
        # reading a room nobody has used yet makes it the reader's, as opening it would
        async with http.get(f"{secured.url}/api/chat/history/fresh", headers=bearer("bob")):
            pass
    assert await refused(ws_url(secured, "/v1/session/chat?sid=fresh", "alice")) == (
        room_error(SESSION_FORBIDDEN),
        4403,
    )


async def test_a_counseling_session_is_its_first_users(secured: LiveServer) -> None:
    path = "/ws/session/counsel1"
    async with websocket(ws_url(secured, path, "alice")) as alice:
        request = {"type": "request_ai_response", "data": {"message": "힘들어요", "emotion": "sad"}}
        await alice.send_json(request)
        assert (await alice.receive_json(timeout=10))["type"] == "ai_stream_begin"
    assert await refused(ws_url(secured, path, "bob")) == (
        counseling_error(SESSION_FORBIDDEN),
        4403,
    )
    async with websocket(ws_url(secured, path, "alice")) as again:  # still hers
        await again.send_json(request)
        assert (await again.receive_json(timeout=10))["type"] == "ai_stream_begin"


async def test_an_agent_client_id_is_its_first_users(secured: LiveServer) -> None:
    path = "/ws/chat/client1"
    async with websocket(ws_url(secured, path, "alice")) as alice:
        await alice.send_json({"type": "ping"})
        assert await alice.receive_json(timeout=10) == {"type": "pong"}
        assert await refused(ws_url(secured, path, "bob")) == (agent_error(SESSION_FORBIDDEN), 4403)
        # the first-frame token follows the same rule
        async with websocket(ws_url(secured, path)) as bob:
            await bob.send_json({"type": "auth", "token": token("bob")})
            assert await bob.receive_json(timeout=10) == agent_error(SESSION_FORBIDDEN)
            assert (await bob.receive(timeout=10)).type is aiohttp.WSMsgType.CLOSE
            assert bob.close_code == 4403
        # bob did not replace alice's connection
        await alice.send_json({"type": "ping"})
        assert await alice.receive_json(timeout=10) == {"type": "pong"}


async def test_an_owner_the_database_cannot_tell_is_a_temporary_refusal(
    secured: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def outage(kind: Kind, key: str, user: str) -> str:
        raise OperationalError("database gone")

    monkeypatch.setattr(ownership, "claim", outage)
    room = ws_url(secured, "/v1/session/chat?sid=room1", "alice")
    assert await refused(room) == (room_error(TEMPORARY_FAILURE), 1013)
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{secured.url}/api/chat/history/room1", headers=bearer()) as resp,
    ):
        assert resp.status == 503 and await resp.json() == {"message": TEMPORARY_FAILURE}
    monkeypatch.undo()
    async with websocket(room) as ws:  # served again once the database answers
        await ws.send_json({"hd": {"event": "chat.message"}, "bd": {"text": "hi"}})
        assert (await ws.receive_json(timeout=10))["bd"] == {"text": "hi"}


# -- ownership records -----------------------------------------------------------------------


async def test_the_first_claim_wins_under_concurrency(secured: LiveServer) -> None:
    users = [f"user{i}" for i in range(8)]
    owners = await asyncio.gather(*(claim(Kind.ROOM, "contested", u) for u in users))
    assert len(set(owners)) == 1 and owners[0] in users
    assert await SessionOwner.filter(session_id="contested").count() == 1
    # the same key of another kind is another session
    assert await claim(Kind.COUNSELING, "contested", "someone") == "someone"


async def test_an_existing_database_gains_only_the_new_table(database_url: str) -> None:
    """A database made before AUTH_SECRET existed has no `session_owners`: the next start
    adds it and touches no existing table (`calls` keeps its columns)."""
    settings = make_settings(database_url, auth_secret=SECRET)
    async with serve(settings):
        columns_before = await _columns("calls")
        await db.connection().execute_script("DROP TABLE session_owners")
    async with serve(settings) as live:
        assert await _columns("calls") == columns_before
        async with websocket(ws_url(live, "/ws/session/s1", "alice")) as ws:
            assert not ws.closed
        assert await SessionOwner.filter(session_id="s1").count() == 1


async def _columns(table: str) -> set[str]:
    conn = db.connection()
    dialect = conn.capabilities.dialect
    if dialect in ("mysql", "postgres"):
        schema = "DATABASE()" if dialect == "mysql" else "current_schema()"
        _, rows = await conn.execute_query(
            "SELECT column_name AS name FROM information_schema.columns "
            f"WHERE table_schema = {schema} AND table_name = "
            + ("%s" if dialect == "mysql" else "$1"),
            [table],
        )
    else:
        _, rows = await conn.execute_query(f"PRAGMA table_info({table})")
    return {str(r["name"]) for r in rows}


# -- without AUTH_SECRET ---------------------------------------------------------------------


async def test_without_a_secret_tokens_are_not_needed_nor_checked(any_server: LiveServer) -> None:
    client = RecordingClient()
    await client.connect(any_server.url, auth={"token": "garbage"})
    assert (await client.call("join-chat", {"userId": "anyone"}))["userId"] == "anyone"
    await client.close()
    async with websocket(ws_url(any_server, "/v1/session/chat?sid=open")) as ws:
        await ws.send_json({"hd": {"event": "chat.message"}, "bd": {"text": "hi"}})
        assert (await ws.receive_json(timeout=10))["bd"] == {"text": "hi"}
    assert await SessionOwner.all().count() == 0
