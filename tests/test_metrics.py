"""`/metrics`: the turn histogram, turn errors, provider timings and connections move with
real traffic (values are read before and after: the registry is shared by the process)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import LiveServer, fake_openai_settings, serve
from tests.support.fakes.openai_server import FakeOpenAI, running_fake_openai
from tests.support.sio import joined_chat_client
from tests.support.waiting import until

Sample = tuple[str, tuple[tuple[str, str], ...]]


async def scrape(live: LiveServer) -> dict[Sample, float]:
    async with aiohttp.ClientSession() as http, http.get(f"{live.url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict[Sample, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_a_chat_turn_and_its_connection_show_in_metrics(server: LiveServer) -> None:
    before = await scrape(server)
    c, session_id = await joined_chat_client(server.url)
    try:
        during = await scrape(server)
        chat = {"protocol": "/chat"}
        assert value(during, "mobok_connections", **chat) == (
            value(before, "mobok_connections", **chat) + 1
        )
        await c.emit("send-message", {"sessionId": session_id, "message": "노인 복지 서비스"})
        await c.next("ai-message")  # the reply (the greeting came with the join)
        after = await scrape(server)
        for name in ("mobok_turn_seconds_count", "mobok_turn_seconds_bucket"):
            labels = chat if name.endswith("count") else {**chat, "le": "+Inf"}
            assert value(after, name, **labels) == value(before, name, **labels) + 1
        assert value(after, "mobok_turn_seconds_sum", **chat) > value(
            before, "mobok_turn_seconds_sum", **chat
        )
        for stage in ("llm_first_token", "llm_total"):
            provider = {"provider": "local", "stage": stage}
            assert value(after, "mobok_provider_seconds_count", **provider) == (
                value(before, "mobok_provider_seconds_count", **provider) + 1
            )
        assert value(after, "mobok_turn_errors_total", **chat) == value(
            before, "mobok_turn_errors_total", **chat
        )
    finally:
        await c.close()

    async def back_to_before() -> bool:
        now = await scrape(server)
        return value(now, "mobok_connections", protocol="/chat") == value(
            before, "mobok_connections", protocol="/chat"
        )

    await until(back_to_before, what="the metric to move back")


@pytest.fixture
async def failing_model(sqlite_url: str) -> AsyncIterator[tuple[LiveServer, FakeOpenAI]]:
    async with running_fake_openai() as fake:
        settings = fake_openai_settings(sqlite_url, fake, ai_timeout_seconds=2)
        async with serve(settings) as live:
            yield live, fake


async def test_a_failed_chat_turn_is_counted(
    failing_model: tuple[LiveServer, FakeOpenAI],
) -> None:
    live, fake = failing_model
    c, session_id = await joined_chat_client(live.url)
    try:
        before = await scrape(live)
        fake.fail_status = 500
        await c.emit("send-message", {"sessionId": session_id, "message": "노인 일자리"})
        assert (await c.next("error"))["message"] == "AI 응답 생성에 실패했습니다"
        after = await scrape(live)
        chat = {"protocol": "/chat"}
        assert value(after, "mobok_turn_errors_total", **chat) == (
            value(before, "mobok_turn_errors_total", **chat) + 1
        )
        assert value(after, "mobok_turn_seconds_count", **chat) == value(
            before, "mobok_turn_seconds_count", **chat
        )
    finally:
        await c.close()


async def test_a_counseling_socket_and_turn_show_in_metrics(server: LiveServer) -> None:
    labels = {"protocol": "/ws/session"}
    before = await scrape(server)
    url = f"{server.url.replace('http', 'ws', 1)}/ws/session/metrics_test"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        request = {"type": "request_ai_response", "data": {"message": "요즘 잠을 못 자요"}}
        await ws.send_json(request)
        while (await ws.receive_json(timeout=10))["type"] != "ai_stream_complete":
            pass
        during = await scrape(server)
        assert value(during, "mobok_connections", **labels) == (
            value(before, "mobok_connections", **labels) + 1
        )
        assert value(during, "mobok_turn_seconds_count", **labels) == (
            value(before, "mobok_turn_seconds_count", **labels) + 1
        )

    async def closed() -> bool:
        now = await scrape(server)
        return value(now, "mobok_connections", **labels) == value(
            before, "mobok_connections", **labels
        )

    await until(closed, what="the metric to move")


@pytest.mark.parametrize(
    ("path", "protocol"),
    [
        ("/ws/chat/metrics_client", "/ws/chat"),
        ("/v1/session/chat?sid=metrics_room", "/v1/session/chat"),
    ],
)
async def test_a_plain_websocket_is_counted_while_it_is_open(
    server: LiveServer, path: str, protocol: str
) -> None:
    labels = {"protocol": protocol}
    start = value(await scrape(server), "mobok_connections", **labels)

    def counted(expected: float) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return value(await scrape(server), "mobok_connections", **labels) == expected

        return check

    url = f"{server.url.replace('http', 'ws', 1)}{path}"
    async with aiohttp.ClientSession() as http, http.ws_connect(url):
        await until(counted(start + 1), what="the socket to be counted")
    await until(counted(start), what="the socket to be let go")
