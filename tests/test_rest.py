"""Chat REST (§1.5): history, health, CORS, OpenAPI and Swagger UI."""

from __future__ import annotations

import re

import aiohttp

from tests.conftest import LiveServer
from tests.support.sio import RecordingClient

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def test_session_messages_route(any_server: LiveServer) -> None:
    c = RecordingClient()
    await c.connect(any_server.url)
    try:
        session_id = (await c.call("join-chat", {"userId": "u"}))["sessionId"]
        await c.call("send-message", {"sessionId": session_id, "message": "노인 일자리"})
        await c.next("ai-message")
        await c.next("ai-message")
    finally:
        await c.close()
    async with aiohttp.ClientSession() as http:
        url = f"{any_server.url}/api/v1/chat/sessions/{session_id}/messages"
        async with http.get(url, headers={"Origin": "http://example.test"}) as resp:
            assert resp.status == 200
            assert resp.headers["Access-Control-Allow-Origin"] in ("*", "http://example.test")
            body = await resp.json()
        messages = body["messages"]
        assert [m["sender"] for m in messages] == ["assistant", "user", "assistant"]
        assert messages[1]["content"] == "노인 일자리"
        for m in messages:
            assert set(m) == {"id", "sessionId", "sender", "messageType", "content", "createdAt"}
            assert m["sessionId"] == session_id and m["messageType"] == "TEXT"
            assert ISO_MS.match(m["createdAt"])
        async with http.get(f"{any_server.url}/api/v1/chat/sessions/nope/messages") as resp:
            assert resp.status == 404
            assert await resp.json() == {"message": "세션을 찾을 수 없습니다"}


async def test_health_and_preflight(server: LiveServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/api/v1/health") as resp:
            assert resp.status == 200
            body = await resp.json()
            assert body["status"] == "ok" and body["db"] == "ok"
        preflight = {
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "content-type",
        }
        async with http.options(f"{server.url}/api/v1/health", headers=preflight) as resp:
            assert resp.status == 200
            assert resp.headers["Access-Control-Allow-Origin"] in ("*", "http://localhost:5173")
            assert "GET" in resp.headers["Access-Control-Allow-Methods"]


async def test_health_reports_a_dead_database(server: LiveServer) -> None:
    from tortoise import Tortoise

    await Tortoise.close_connections()
    from server import db

    # point the ORM at a database that cannot be opened
    await Tortoise.init(
        db_url="sqlite:///nonexistent-dir/x/y.sqlite3",
        modules={"models": ["models.chat"]},
        _enable_global_fallback=True,
    )
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/api/v1/health") as resp:
            assert resp.status == 503
            body = await resp.json()
            assert body["db"] == "error" and body["status"] == "ok"
    assert db  # imported for the module's ping


async def test_openapi_document_and_swagger_ui(server: LiveServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/api/docs/openapi.json") as resp:
            assert resp.status == 200
            doc = await resp.json()
        assert doc["openapi"].startswith("3.")
        route = doc["paths"]["/api/v1/chat/sessions/{sessionId}/messages"]["get"]
        assert route["tags"] == ["chat"]
        assert set(route["responses"]) == {"200", "400", "404"}
        assert "/api/v1/health" in doc["paths"]
        async with http.get(f"{server.url}/api/docs") as resp:
            page = await resp.text()
            assert resp.status == 200 and "swagger-ui-bundle.js" in page
            assert "http" not in page.split("<body>")[1].replace("/api/docs", "")
        async with http.get(f"{server.url}/api/docs/static/swagger-ui-bundle.js") as resp:
            assert resp.status == 200 and len(await resp.read()) > 100_000
