"""Privacy REST (admin): sessions and calls lists with cursor paging, message paging, session
deletion (its sockets told), user export and erase on every protocol, retention; on SQLite,
MySQL and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import jwt
import pytest
from aiohttp import ClientSession

from models import ChatMessage, ChatSession, Sender
from models.agents import AgentMessage, AgentReport
from models.calls import Call
from models.counseling import Conversation
from models.owners import SessionOwner
from models.rooms import RoomMessage
from server.admin.access import NotAdmin, identify
from server.admin.retention import purge_once
from server.chat import clock
from server.keys import CHAT
from tests.conftest import LiveServer, make_settings, serve
from tests.support.sio import joined_chat_client
from tests.support.waiting import until

SECRET = "a-privacy-test-secret-long-enough-for-hs256-at-32-bytes"
CALLER = "01012345678"


def admin_token(**claims: Any) -> dict[str, str]:
    body = {"sub": "operator-kim", "role": "admin", **claims}
    return {"Authorization": "Bearer " + jwt.encode(body, SECRET, algorithm="HS256")}


async def get_json(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with ClientSession() as http, http.get(url, headers=headers) as resp:
        return resp.status, await resp.json()


async def chat_session(live: LiveServer, user: str, texts: list[str]) -> str:
    client, session_id = await joined_chat_client(live.url, user)
    await client.close()
    store = live.app[CHAT].store
    for text in texts:
        await store.add(session_id, Sender.USER, text)
    return session_id


async def test_sessions_list_filters_and_pages(any_server: LiveServer) -> None:
    made = [await chat_session(any_server, "grandma", [f"m{i}"] * i) for i in range(5)]
    other = await chat_session(any_server, "someone-else", [])
    await ChatSession.filter(session_id=made[0]).update(is_active=False)
    base = any_server.url + "/api/v1/chat/sessions"

    seen: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(5):
        status, body = await get_json(f"{base}?userId=grandma&limit=2{cursor}")
        assert status == 200
        seen += body["sessions"]
        if body["next"] is None:
            break
        cursor = f"&before={body['next']}"
    assert [s["sessionId"] for s in seen] == list(reversed(made))  # newest first, each once
    assert {s["userId"] for s in seen} == {"grandma"}
    counts = {s["sessionId"]: s["messageCount"] for s in seen}
    assert [counts[s] for s in made] == [1, 2, 3, 4, 5]  # the greeting + i messages
    assert seen[-1]["isActive"] is False and seen[-1]["createdAt"].endswith("Z")

    _, inactive = await get_json(f"{base}?active=false")
    assert [s["sessionId"] for s in inactive["sessions"]] == [made[0]]
    _, everyone = await get_json(base)
    assert other in {s["sessionId"] for s in everyone["sessions"]} and everyone["next"] is None
    status, body = await get_json(f"{base}?before=nope")  # names no session
    assert (status, body) == (404, {"message": "세션을 찾을 수 없습니다"})
    for bad in ("limit=0", "limit=201", "limit=x", "active=yes", "userId="):
        status, body = await get_json(f"{base}?{bad}")
        assert status == 400, bad
        assert body["message"].startswith("잘못된 요청입니다: "), body


async def test_messages_page_backwards_with_a_cursor(any_server: LiveServer) -> None:
    session_id = await chat_session(any_server, "u", [f"text {i}" for i in range(60)])
    url = f"{any_server.url}/api/v1/chat/sessions/{session_id}/messages"
    status, newest = await get_json(url)
    assert status == 200
    assert [m["content"] for m in newest["messages"]] == [f"text {i}" for i in range(10, 60)]
    pages: list[list[str]] = []
    cursor = ""
    while True:
        _, body = await get_json(f"{url}?limit=25{cursor}")
        pages.append([m["content"] for m in body["messages"]])
        if body["next"] is None:
            break
        cursor = f"&before={body['next']}"
    assert [len(p) for p in pages] == [25, 25, 11]
    everything = [c for page in reversed(pages) for c in page]
    assert everything[0].startswith("안녕하세요") and everything[1:] == [
        f"text {i}" for i in range(60)
    ]
    status, body = await get_json(f"{url}?before=00000000-0000-0000-0000-000000000000")
    assert status == 404 and body == {"message": "메시지를 찾을 수 없습니다"}


async def test_deleting_a_session_tells_its_sockets_and_erases_its_messages(
    any_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    client, session_id = await joined_chat_client(any_server.url, "deleted-user")
    watcher, kept = await joined_chat_client(any_server.url, "kept-user")
    caplog.set_level(logging.INFO, logger="server.admin")
    async with ClientSession() as http:
        async with http.delete(f"{any_server.url}/api/v1/chat/sessions/{session_id}") as resp:
            assert resp.status == 204
        assert await client.next("chat-left") == {"sessionId": session_id}
        async with http.delete(f"{any_server.url}/api/v1/chat/sessions/{session_id}") as resp:
            assert resp.status == 404
            assert await resp.json() == {"message": "세션을 찾을 수 없습니다"}
    await client.emit("send-message", {"sessionId": session_id, "message": "still there?"})
    assert (await client.next("error"))["message"] == "세션을 찾을 수 없습니다"
    assert await ChatMessage.filter(session_id=session_id).count() == 0
    assert not await ChatSession.filter(session_id=session_id).exists()
    assert await ChatMessage.filter(session_id=kept).count() == 1
    assert await watcher.nothing("chat-left")
    [record] = [r for r in caplog.records if r.getMessage() == "admin action"]
    assert (record.who, record.action, record.target) == (  # type: ignore[attr-defined]
        "loopback:127.0.0.1",
        "delete session",
        session_id,
    )
    await client.close()
    await watcher.close()


async def place_call(live: LiveServer, headers: dict[str, str] | None = None) -> dict[str, Any]:
    async with ClientSession() as http:
        async with http.post(
            live.url + "/api/v1/calls", json={"callerNumber": CALLER}, headers=headers
        ) as resp:
            assert resp.status == 201
            call: dict[str, Any] = (await resp.json())["data"]["call"]
    await live.app[CHAT].store.add(call["sessionId"], Sender.USER, "기초연금 문의합니다")
    return call


async def store_other_protocols(user: str, room: str | None = None) -> None:
    now = clock.now()
    await AgentMessage.create(
        project_id="project_001", agent_name="집사", client_id=user, role="user",
        content="에이전트에게 보낸 말", created_at=now,
    )  # fmt: skip
    await AgentReport.create(
        client_id=user, project_id="project_001", agent_name="집사", task="조사",
        content="보고", created_at=now,
    )  # fmt: skip
    await Conversation.create(
        session_id=user, user_message="상담 내용", ai_response="답", emotion="sad", created_at=now
    )
    if room is not None:
        await RoomMessage.create(
            session_id=room, participant="A", body={"bd": {"text": "방 메시지"}}, created_at=now
        )


async def test_export_then_erase_everything_of_a_user_without_auth_secret(
    any_server: LiveServer,
) -> None:
    """Without AUTH_SECRET a call belongs to its caller's number, an agent client and a
    counseling session to the id equal to the user id."""
    session_id = await chat_session(any_server, CALLER, ["제 이름은 김복지입니다"])
    call = await place_call(any_server)
    await store_other_protocols(CALLER)
    someone_else = await chat_session(any_server, "01099998888", ["남의 대화"])
    await store_other_protocols("01099998888")

    status, doc = await get_json(f"{any_server.url}/api/v1/users/{CALLER}/export")
    assert status == 200 and doc["userId"] == CALLER
    assert [s["sessionId"] for s in doc["chatSessions"]] == [session_id]
    assert doc["chatSessions"][0]["messages"][-1]["content"] == "제 이름은 김복지입니다"
    [exported_call] = doc["calls"]
    assert exported_call["id"] == call["id"]
    assert [m["content"] for m in exported_call["transcript"]] == ["기초연금 문의합니다"]
    assert [m["content"] for m in doc["agentChat"]["messages"]] == ["에이전트에게 보낸 말"]
    assert [r["task"] for r in doc["agentChat"]["reports"]] == ["조사"]
    assert [e["userMessage"] for e in doc["counseling"]] == ["상담 내용"]
    assert doc["rooms"] == []

    async with ClientSession() as http, http.delete(f"{any_server.url}/api/v1/users/{CALLER}") as r:
        assert r.status == 200
        erased = (await r.json())["erased"]
    assert erased == {
        "chatMessages": 2 + 1,  # greeting + message, the call's one
        "calls": 1,
        "chatSessions": 2,
        "agentMessages": 1,
        "agentReports": 1,
        "counselingExchanges": 1,
        "roomMessages": 0,
        "ownerships": 0,
    }
    _, after = await get_json(f"{any_server.url}/api/v1/users/{CALLER}/export")
    assert after["chatSessions"] == after["calls"] == after["counseling"] == []
    assert after["agentChat"] == {"messages": [], "reports": []}
    assert await Call.filter(id=call["id"]).count() == 0
    # the other user's data is untouched
    assert await ChatMessage.filter(session_id=someone_else).count() == 2
    assert await Conversation.filter(session_id="01099998888").count() == 1
    assert await AgentMessage.filter(client_id="01099998888").count() == 1


@pytest.fixture
async def secured(database_url: str) -> AsyncIterator[LiveServer]:
    async with serve(make_settings(database_url, auth_secret=SECRET)) as live:
        yield live


async def test_with_auth_secret_the_owned_ids_are_the_users_and_an_admin_jwt_is_needed(
    secured: LiveServer,
) -> None:
    user_token = {"Authorization": "Bearer " + jwt.encode({"sub": "alice"}, SECRET)}
    call = await place_call(secured, user_token)
    await store_other_protocols("client-7", room="room-9")
    now = clock.now()
    for kind, key in (("agent", "client-7"), ("counseling", "client-7"), ("room", "room-9")):
        await SessionOwner.create(kind=kind, session_id=key, user_id="alice", created_at=now)
    url = f"{secured.url}/api/v1/users/alice/export"

    assert (await get_json(url))[0] == 401
    assert await get_json(url, user_token) == (403, {"message": "관리자 권한이 필요합니다"})
    status, doc = await get_json(url, admin_token(role=None, roles=["support", "admin"]))
    assert status == 200
    assert [c["id"] for c in doc["calls"]] == [call["id"]]
    assert [m["clientId"] for m in doc["agentChat"]["messages"]] == ["client-7"]
    assert [e["sessionId"] for e in doc["counseling"]] == ["client-7"]
    assert [m["participant"] for m in doc["rooms"][0]["messages"]] == ["A"]

    # the call's owner reads its transcript; an admin any session's messages
    status, body = await get_json(f"{secured.url}/api/v1/calls/{call['id']}", user_token)
    assert [m["content"] for m in body["data"]["transcript"]] == ["기초연금 문의합니다"]
    messages = f"{secured.url}/api/v1/chat/sessions/{call['sessionId']}/messages"
    assert (await get_json(messages, admin_token()))[0] == 200

    async with ClientSession() as http:
        async with http.delete(f"{secured.url}/api/v1/users/alice", headers=admin_token()) as r:
            erased = (await r.json())["erased"]
    assert erased["roomMessages"] == 1 and erased["ownerships"] == 3
    assert erased["counselingExchanges"] == 1 and erased["calls"] == 1


async def test_admin_token_is_the_alternative_and_network_clients_need_a_credential(
    sqlite_url: str,
) -> None:
    settings = make_settings(sqlite_url, admin_token="static-admin-token-0123456789")
    async with serve(settings) as live:
        url = live.url + "/api/v1/chat/sessions"
        assert (await get_json(url))[0] == 401
        bad = {"Authorization": "Bearer wrong"}
        assert await get_json(url, bad) == (401, {"message": "인증에 실패했습니다"})
        good = {"Authorization": "Bearer static-admin-token-0123456789"}
        assert (await get_json(url, good))[0] == 200
    open_settings = make_settings(sqlite_url)
    assert identify(open_settings, None, "127.0.0.1") == "loopback:127.0.0.1"
    assert identify(open_settings, None, "::1") == "loopback:::1"
    for remote in ("203.0.113.9", "10.0.0.2", None):
        with pytest.raises(NotAdmin):
            identify(open_settings, None, remote)


async def test_calls_list_filters_by_status_and_pages(any_server: LiveServer) -> None:
    calls = [await place_call(any_server) for _ in range(3)]
    await Call.filter(id=calls[1]["id"]).update(status="FAILED")
    base = any_server.url + "/api/v1/calls"
    status, body = await get_json(f"{base}?limit=2")
    assert status == 200 and body["success"] is True
    first = [c["id"] for c in body["data"]["calls"]]
    _, rest = await get_json(f"{base}?limit=2&before={body['data']['next']}")
    assert first + [c["id"] for c in rest["data"]["calls"]] == [c["id"] for c in reversed(calls)]
    assert rest["data"]["next"] is None
    _, failed = await get_json(f"{base}?status=FAILED")
    assert [c["id"] for c in failed["data"]["calls"]] == [calls[1]["id"]]
    status, bad = await get_json(f"{base}?status=LOST")
    assert status == 400
    assert bad == {"success": False, "error": {"message": "잘못된 요청입니다: status"}}


async def test_retention_deletes_only_what_is_older_in_small_batches(
    any_server: LiveServer,
) -> None:
    old = clock.now() - timedelta(days=40)
    fresh_session = await chat_session(any_server, "u", ["new"])
    old_session = await chat_session(any_server, "u", [])
    await ChatSession.filter(session_id=old_session).update(last_activity=old)
    for i in range(7):
        await ChatMessage.create(
            session_id=old_session, sender="user", content=f"old {i}", created_at=old,
            updated_at=old,
        )  # fmt: skip
    await ChatMessage.filter(session_id=old_session, sender="assistant").update(created_at=old)
    old_call = await place_call(any_server)
    await Call.filter(id=old_call["id"]).update(created_at=old)
    await Conversation.create(
        session_id="s", user_message="old", ai_response="a", emotion=None, created_at=old
    )
    await RoomMessage.create(session_id="r", participant="A", body={}, created_at=old)

    counts = await purge_once(clock.now() - timedelta(days=30), batch_rows=3)
    assert counts["chatMessages"] == 7 + 1  # and the greeting; not the call's (new) message
    assert counts["calls"] == 1 and counts["counselingExchanges"] == 1
    assert counts["roomMessages"] == 1
    assert not await ChatSession.filter(session_id=old_session).exists()
    assert await ChatMessage.filter(session_id=old_call["sessionId"]).count() == 0  # with it
    assert await ChatMessage.filter(session_id=fresh_session).count() == 2
    assert await purge_once(clock.now() - timedelta(days=30), batch_rows=3) == dict.fromkeys(
        counts, 0
    )


async def test_the_retention_task_runs_by_itself(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, retention_days=1, retention_interval_minutes=0.002)
    async with serve(settings) as live:
        old = clock.now() - timedelta(days=2)
        await Conversation.create(
            session_id="s", user_message="old", ai_response="a", emotion=None, created_at=old
        )
        await Conversation.create(
            session_id="s",
            user_message="new",
            ai_response="a",
            emotion=None,
            created_at=clock.now(),
        )
        await until(_gone, what="the old exchange deleted")
        assert live.app is not None
        assert await Conversation.filter(user_message="new").count() == 1


async def _gone() -> bool:
    return not await Conversation.filter(user_message="old").exists()


async def test_an_erased_users_sockets_leave_their_sessions(any_server: LiveServer) -> None:
    client, session_id = await joined_chat_client(any_server.url, "erase-me")
    async with ClientSession() as http, http.delete(f"{any_server.url}/api/v1/users/erase-me"):
        pass
    assert await client.next("chat-left") == {"sessionId": session_id}
    await client.close()
