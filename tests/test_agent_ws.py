"""CONTRACT §3 `/ws/chat/{client_id}` over a real WebSocket, on SQLite and on MySQL."""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from models.agents import AgentMessage, AgentReport
from server.agents.config import AgentConfigError, AgentDirectory
from server.ai.base import LLMEvent, PromptMessage, ProviderError, TextDelta, ToolCall, ToolSpec
from server.keys import AGENT_CHAT
from server.safety.prompts import with_risk_guidance
from server.texts import (
    AGENT_NOT_FOUND,
    AGENT_NOT_RUNNING,
    AI_FAILED,
    AUTH_FAILED,
    AUTH_REQUIRED,
    BROADCAST_DISABLED,
    BROADCAST_FORBIDDEN,
    CONNECTION_REPLACED,
    DELEGATION_EMPTY,
    MESSAGE_EMPTY,
    NOT_A_JSON_OBJECT,
    PROJECT_FORBIDDEN,
    RATE_LIMITED,
    TEXT_FRAMES_ONLY,
    delegation_accepted,
    invalid_field,
    message_too_long,
    unknown_type,
)
from tests.conftest import LiveServer, make_settings, serve
from tests.support.fakes.openai_server import running_fake_openai
from tests.support.waiting import until

PROJECT = "project_001"
BUTLER = "집사"
COUNSELOR = "복지상담사"
SECRET = "s"

Script = Callable[[Sequence[PromptMessage], list[str]], list[LLMEvent]]


class ScriptedLLM:
    """A model that records every prompt and answers from a script; with `gate` set it
    yields the first event, then waits for the gate before the rest."""

    name = "scripted"

    def __init__(self, script: Script, gate: asyncio.Event | None = None) -> None:
        self.script = script
        self.gate = gate
        self.prompts: list[tuple[list[PromptMessage], list[str]]] = []

    async def stream(
        self, messages: Sequence[PromptMessage], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[LLMEvent]:
        tool_names = [t.name for t in tools]
        self.prompts.append((list(messages), tool_names))
        for index, event in enumerate(self.script(messages, tool_names)):
            if index == 1 and self.gate is not None:
                await self.gate.wait()
            yield event

    async def aclose(self) -> None:
        return None


def pieces(*texts: str) -> Script:
    return lambda messages, tools: [TextDelta(t) for t in texts]


def echo(messages: Sequence[PromptMessage], tools: list[str]) -> list[LLMEvent]:
    text = f"답변: {messages[-1].content}. 끝."
    return [TextDelta(text[i : i + 3]) for i in range(0, len(text), 3)]


class AgentClient:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, frame: Any) -> None:
        await self.ws.send_str(json.dumps(frame, ensure_ascii=False))

    async def chat(self, message: Any, agent_name: str = BUTLER, project_id: str = PROJECT) -> None:
        await self.send(
            {
                "type": "chat",
                "message": message,
                "agent_name": agent_name,
                "project_id": project_id,
                "images": [],
            }
        )

    async def next(self) -> dict[str, Any]:
        msg = await asyncio.wait_for(self.ws.receive(), 10)
        assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data)
        frame: dict[str, Any] = json.loads(msg.data)
        return frame

    async def reply(self) -> str:
        """One whole start..end block: the text its response frames add up to."""
        assert await self.next() == {"type": "start"}
        text = ""
        while (frame := await self.next())["type"] == "response":
            assert set(frame) == {"type", "content"} and frame["content"]
            text += frame["content"]
        assert frame == {"type": "end"}, frame
        return text

    async def closed_with(self) -> int | None:
        """The close code the server sent."""
        msg = await asyncio.wait_for(self.ws.receive(), 10)
        assert msg.type is aiohttp.WSMsgType.CLOSE, msg
        code: int = msg.data
        return code


@asynccontextmanager
async def connect(live: LiveServer, client_id: str, **query: str) -> AsyncIterator[AgentClient]:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{live.url}/ws/chat/{client_id}", params=query) as ws,
    ):
        yield AgentClient(ws)


def use_llm(live: LiveServer, llm: ScriptedLLM, agent: str = BUTLER) -> ScriptedLLM:
    live.app[AGENT_CHAT].llms.use(PROJECT, agent, llm)
    return llm


def token(secret: str = SECRET, **claims: Any) -> str:
    with warnings.catch_warnings():  # the brief's one-letter test secret is short on purpose
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return jwt.encode({"sub": "tester", **claims}, secret, algorithm="HS256")


# -- the flow ---------------------------------------------------------------------------


async def test_reply_streams_between_start_and_end(any_server: LiveServer) -> None:
    llm = use_llm(any_server, ScriptedLLM(pieces("안녕", "하세요! ", "무엇을 ", "도와드릴까요?")))
    async with connect(any_server, "client-1") as c:
        await c.chat("안녕하세요")
        assert await c.reply() == "안녕하세요! 무엇을 도와드릴까요?"
    [(prompt, tools)] = llm.prompts
    butler = any_server.app[AGENT_CHAT].directory.find(PROJECT, BUTLER)
    assert butler is not None
    assert [(m.role, m.content) for m in prompt] == [
        ("system", butler.system_prompt),
        ("user", "안녕하세요"),
    ]
    assert tools == ["search_welfare_services", "delegate_task"]
    rows = await AgentMessage.filter(client_id="client-1").order_by("created_at")
    assert [(r.project_id, r.agent_name, r.role, r.content) for r in rows] == [
        (PROJECT, BUTLER, "user", "안녕하세요"),
        (PROJECT, BUTLER, "assistant", "안녕하세요! 무엇을 도와드릴까요?"),
    ]


async def test_seed_client_snippet_works_unchanged(any_server: LiveServer) -> None:
    """The seed document's client: connect to /ws/chat/${clientId}, send its chat frame,
    dispatch on `type` (start opens a bubble, response appends, end closes it)."""
    bubbles: list[str] = []
    open_bubble: list[str] | None = None
    async with connect(any_server, "browser-tab") as c:
        await c.send(
            {
                "type": "chat",
                "message": "안녕하세요",
                "agent_name": "집사",
                "project_id": "project_001",
                "images": [],
            }
        )
        while True:
            data = await c.next()
            if data["type"] == "start":
                assert open_bubble is None
                open_bubble = []
            elif data["type"] == "response":
                assert open_bubble is not None
                open_bubble.append(data["content"])
            elif data["type"] == "end":
                assert open_bubble is not None
                bubbles.append("".join(open_bubble))
                break
            else:
                pytest.fail(f"unexpected frame {data}")
    stored = await AgentMessage.get(client_id="browser-tab", role="assistant")
    assert bubbles == [stored.content] and "복지 서비스" in stored.content


async def test_welfare_question_uses_the_search_tool(any_server: LiveServer) -> None:
    async with connect(any_server, "client-1") as c:
        await c.chat("노인 복지 서비스 알려줘", agent_name=COUNSELOR)
        text = await c.reply()
    assert text.count("    - 담당: ") >= 1 and "1. " in text


async def test_unknown_agent_or_project_is_an_error_and_ping_pongs(any_server: LiveServer) -> None:
    async with connect(any_server, "client-1") as c:
        await c.send({"type": "ping"})
        assert await c.next() == {"type": "pong"}
        await c.chat("안녕", agent_name="없는에이전트")
        assert await c.next() == {"type": "error", "message": AGENT_NOT_FOUND}
        await c.chat("안녕", project_id="project_999")
        assert await c.next() == {"type": "error", "message": AGENT_NOT_FOUND}
        await c.send({"type": "ping"})
        assert await c.next() == {"type": "pong"}
    assert await AgentMessage.all().count() == 0


async def test_ten_rapid_messages_are_answered_in_order(any_server: LiveServer) -> None:
    llm = use_llm(any_server, ScriptedLLM(echo))
    questions = [f"질문 {i}" for i in range(10)]
    async with connect(any_server, "client-1") as c:
        for q in questions:
            await c.chat(q)
        replies = [await c.reply() for _ in questions]
    assert replies == [f"답변: {q}. 끝." for q in questions]
    for i, (prompt, _) in enumerate(llm.prompts):
        # each turn sees every earlier question with its answer, then its own question
        expected = [m for q in questions[:i] for m in (q, f"답변: {q}. 끝.")] + [questions[i]]
        assert [m.content for m in prompt[1:]] == expected


async def test_reconnect_keeps_the_history_per_agent_and_client(any_server: LiveServer) -> None:
    llm = use_llm(any_server, ScriptedLLM(echo))
    async with connect(any_server, "client-1") as c:
        await c.chat("제 이름은 민수입니다")
        await c.reply()
    async with connect(any_server, "client-1") as c:
        await c.chat("제 이름이 뭐였죠?")
        await c.reply()
    async with connect(any_server, "client-2") as c:
        await c.chat("처음 뵙겠습니다")
        await c.reply()
    contexts = [[(m.role, m.content) for m in prompt[1:]] for prompt, _ in llm.prompts]
    assert contexts[1] == [
        ("user", "제 이름은 민수입니다"),
        ("assistant", "답변: 제 이름은 민수입니다. 끝."),
        ("user", "제 이름이 뭐였죠?"),
    ]
    assert contexts[2] == [("user", "처음 뵙겠습니다")]  # another client starts afresh


async def test_context_is_limited_to_the_last_messages(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url, history_context_messages=3)) as live:
        llm = use_llm(live, ScriptedLLM(echo))
        async with connect(live, "client-1") as c:
            for q in ("하나", "둘", "셋"):
                await c.chat(q)
                await c.reply()
    assert [m.content for m in llm.prompts[-1][0][1:]] == ["둘", "답변: 둘. 끝.", "셋"]


# -- auto reports -------------------------------------------------------------------------


async def delivered_report(client_id: str) -> AgentReport:
    """The client's report once marked delivered: the mark is written just after the frame is
    sent, so the client may see the frame a moment before the row changes."""
    rows: list[AgentReport] = []

    async def delivered() -> bool:
        rows[:] = [await AgentReport.get(client_id=client_id)]
        return rows[0].delivered_at is not None

    await until(delivered, 10, f"{client_id}'s report marked delivered")
    return rows[0]


async def test_report_command_delegates_and_reports_back(any_server: LiveServer) -> None:
    async with connect(any_server, "client-1") as c:
        await c.chat("/report 노인 복지 서비스 조사")
        assert await c.reply() == delegation_accepted("노인 복지 서비스 조사")
        report = await c.next()
    assert report["type"] == "auto_report" and set(report) == {"type", "content"}
    assert report["content"].startswith("맡기신 작업을 마쳤습니다: 노인 복지 서비스 조사")
    assert "1. " in report["content"]  # the offline model searched the welfare catalogue
    row = await delivered_report("client-1")
    assert row.content == report["content"] and row.delivered_at is not None
    roles = await AgentMessage.filter(client_id="client-1").order_by("created_at")
    assert [r.role for r in roles] == ["user", "assistant", "report"]


async def test_report_produced_while_away_is_delivered_on_reconnect(
    any_server: LiveServer,
) -> None:
    gate = asyncio.Event()
    use_llm(any_server, ScriptedLLM(pieces("조사 ", "결과입니다."), gate))
    registry = any_server.app[AGENT_CHAT].registry
    async with connect(any_server, "client-1") as c:
        await c.chat("/delegate 장애인 지원 정리")
        await c.reply()
    await until(lambda: registry.current("client-1") is None)
    gate.set()
    await until(lambda: AgentReport.filter(client_id="client-1").exists())
    assert (await AgentReport.get(client_id="client-1")).delivered_at is None
    async with connect(any_server, "client-1") as c:
        report = await c.next()
        assert report == {
            "type": "auto_report",
            "content": "맡기신 작업을 마쳤습니다: 장애인 지원 정리\n\n조사 결과입니다.",
        }
    assert (await delivered_report("client-1")).delivered_at is not None
    async with connect(any_server, "client-1") as c:  # delivered once, not again
        await c.send({"type": "ping"})
        assert await c.next() == {"type": "pong"}


async def test_model_can_delegate_with_the_tool(server: LiveServer) -> None:
    def script(messages: Sequence[PromptMessage], tools: list[str]) -> list[LLMEvent]:
        if "delegate_task" not in tools:  # the delegated work itself
            return [TextDelta("정리한 보고서")]
        if messages[-1].role == "tool":
            return [TextDelta("맡겨 두었습니다.")]
        arguments = json.dumps({"description": "청년 주거 지원 정리"}, ensure_ascii=False)
        return [ToolCall("call_1", "delegate_task", arguments)]

    use_llm(server, ScriptedLLM(script))
    async with connect(server, "client-1") as c:
        await c.chat("청년 주거 지원을 정리해서 나중에 알려 줘")
        assert await c.reply() == "맡겨 두었습니다."
        assert await c.next() == {
            "type": "auto_report",
            "content": "맡기신 작업을 마쳤습니다: 청년 주거 지원 정리\n\n정리한 보고서",
        }


async def test_failed_delegation_is_reported_as_failed(server: LiveServer) -> None:
    def script(messages: Sequence[PromptMessage], tools: list[str]) -> list[LLMEvent]:
        raise ProviderError("down")

    use_llm(server, ScriptedLLM(script))
    async with connect(server, "client-1") as c:
        await c.chat("/report 무언가")
        await c.reply()
        report = await c.next()
    assert report["type"] == "auto_report"
    assert report["content"].startswith("맡기신 작업을 끝내지 못했습니다: 무언가")


# -- errors ---------------------------------------------------------------------------------


async def test_malformed_frames_get_errors_and_the_socket_stays_open(
    any_server: LiveServer,
) -> None:
    too_long = "가" * (any_server.settings.max_message_length + 1)
    cases: list[tuple[Any, str]] = [
        ("not json", NOT_A_JSON_OBJECT),
        ([1, 2], NOT_A_JSON_OBJECT),
        ({"message": "hi"}, invalid_field("type")),
        ({"type": "dance"}, unknown_type("dance")),
        ({"type": "chat", "agent_name": BUTLER, "project_id": PROJECT}, invalid_field("message")),
        (
            {"type": "chat", "message": 1, "agent_name": BUTLER, "project_id": PROJECT},
            invalid_field("message"),
        ),
        ({"type": "chat", "message": "hi", "project_id": PROJECT}, invalid_field("agent_name")),
        (
            {
                "type": "chat",
                "message": "hi",
                "agent_name": BUTLER,
                "project_id": PROJECT,
                "images": "x",
            },
            invalid_field("images"),
        ),
    ]
    async with connect(any_server, "client-1") as c:
        for frame, expected in cases:
            if isinstance(frame, str):
                await c.ws.send_str(frame)
            else:
                await c.send(frame)
            assert await c.next() == {"type": "error", "message": expected}, frame
        await c.ws.send_bytes(b"\x00\x01")
        assert await c.next() == {"type": "error", "message": TEXT_FRAMES_ONLY}
        await c.chat("   ")
        assert await c.next() == {"type": "error", "message": MESSAGE_EMPTY}
        await c.chat(too_long)
        assert await c.next() == {
            "type": "error",
            "message": message_too_long(any_server.settings.max_message_length),
        }
        await c.chat("/report   ")
        assert await c.next() == {"type": "error", "message": DELEGATION_EMPTY}
        await c.chat("안녕하세요")
        assert await c.reply()
    assert await AgentMessage.filter(role="user").count() == 1


async def test_model_failure_closes_the_block_with_an_error(server: LiveServer) -> None:
    def script(messages: Sequence[PromptMessage], tools: list[str]) -> list[LLMEvent]:
        raise ProviderError("down")

    use_llm(server, ScriptedLLM(script))
    async with connect(server, "client-1") as c:
        await c.chat("안녕하세요")
        assert [await c.next() for _ in range(3)] == [
            {"type": "start"},
            {"type": "error", "message": AI_FAILED},
            {"type": "end"},
        ]
    rows = await AgentMessage.filter(client_id="client-1").values_list("role", flat=True)
    assert rows == ["user"]


async def test_rate_limit_per_client(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url, max_ai_requests_per_minute=2)) as live:
        async with connect(live, "client-1") as c:
            for _ in range(2):
                await c.chat("안녕하세요")
                await c.reply()
            await c.chat("안녕하세요")
            assert await c.next() == {"type": "error", "message": RATE_LIMITED}


async def test_disabled_agent_is_not_running(sqlite_url: str, tmp_path: Path) -> None:
    agents = tmp_path / "agents.json"
    agents.write_text(
        json.dumps(
            {
                "projects": [
                    {
                        "id": "p",
                        "agents": [{"name": "쉬는중", "system_prompt": "x", "enabled": False}],
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    async with serve(make_settings(sqlite_url, agents_path=agents)) as live:
        async with connect(live, "client-1") as c:
            await c.chat("안녕", agent_name="쉬는중", project_id="p")
            assert await c.next() == {"type": "error", "message": AGENT_NOT_RUNNING}
            await c.chat("안녕")  # the shipped agents are not loaded with this file
            assert await c.next() == {"type": "error", "message": AGENT_NOT_FOUND}


def test_invalid_agents_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "agents.json"
    bad.write_text('{"projects": [{"id": "p", "agents": [{"name": "a"}]}]}', encoding="utf-8")
    with pytest.raises(AgentConfigError, match="system_prompt"):
        AgentDirectory.load(bad)
    with pytest.raises(AgentConfigError):
        AgentDirectory.load(tmp_path / "missing.json")


# -- connections ------------------------------------------------------------------------------


async def test_newer_connection_replaces_the_older(any_server: LiveServer) -> None:
    async with connect(any_server, "client-1") as old, connect(any_server, "client-1") as new:
        assert await old.next() == {"type": "error", "message": CONNECTION_REPLACED}
        assert await old.closed_with() == 4000
        await new.chat("안녕하세요")
        assert await new.reply()


async def test_reply_in_flight_moves_to_the_new_connection(server: LiveServer) -> None:
    gate = asyncio.Event()
    use_llm(server, ScriptedLLM(pieces("첫 문장입니다.", " 둘째 문장입니다."), gate))
    async with connect(server, "client-1") as old:
        await old.chat("안녕하세요")
        assert await old.next() == {"type": "start"}
        assert await old.next() == {"type": "response", "content": "첫 문장입니다."}
        async with connect(server, "client-1") as new:
            assert (await old.next())["type"] == "error"
            gate.set()
            assert await new.reply() == "첫 문장입니다. 둘째 문장입니다."


async def test_broadcast_reaches_connected_clients(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url, auth_secret=SECRET)) as live:
        url = f"{live.url}/api/v1/agents/broadcast"
        admin = {"Authorization": f"Bearer {token(role='admin')}"}
        auth = {"token": token()}
        async with (
            connect(live, "a", project_id=PROJECT, **auth) as a,
            connect(live, "b", **auth) as b,
            aiohttp.ClientSession() as http,
        ):
            async with http.post(url, json={"content": "점검 안내"}, headers=admin) as r:
                assert r.status == 200 and await r.json() == {"delivered": 2}
            for c in (a, b):
                assert await c.next() == {"type": "auto_report", "content": "점검 안내"}
            body = {"content": "프로젝트 공지", "project_id": PROJECT}
            async with http.post(url, json=body, headers=admin) as r:
                assert await r.json() == {"delivered": 1}
            assert await a.next() == {"type": "auto_report", "content": "프로젝트 공지"}
            user = {"Authorization": f"Bearer {token()}"}
            async with http.post(url, json=body, headers=user) as r:
                assert r.status == 403 and await r.json() == {"message": BROADCAST_FORBIDDEN}
            async with http.post(url, json=body) as r:
                assert r.status == 401 and await r.json() == {"message": AUTH_REQUIRED}
            async with http.post(url, json={"content": 3}, headers=admin) as r:
                assert r.status == 400 and await r.json() == {"message": invalid_field("content")}
            await b.send({"type": "ping"})  # b got nothing from the project notice
            assert await b.next() == {"type": "pong"}


async def test_broadcast_is_off_without_auth_secret(server: LiveServer) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.url}/api/v1/agents/broadcast", json={"content": "x"}) as r,
    ):
        assert r.status == 403 and await r.json() == {"message": BROADCAST_DISABLED}


# -- auth -------------------------------------------------------------------------------------


@pytest.fixture
async def secured(database_url: str) -> AsyncIterator[LiveServer]:
    async with serve(make_settings(database_url, auth_secret=SECRET)) as live:
        yield live


async def test_auth_with_a_query_token(secured: LiveServer) -> None:
    async with connect(secured, "client-1", token=token()) as c:
        await c.chat("안녕하세요")
        assert await c.reply()


async def test_auth_with_a_first_frame(secured: LiveServer) -> None:
    async with connect(secured, "client-1") as c:
        await c.send({"type": "auth", "token": token()})
        await c.chat("안녕하세요")
        assert await c.reply()


async def test_auth_refuses_a_missing_or_bad_token(secured: LiveServer) -> None:
    async with connect(secured, "client-1") as c:
        await c.chat("안녕하세요")  # not an auth frame
        assert await c.next() == {"type": "error", "message": AUTH_REQUIRED}
        assert await c.closed_with() == 4401
    expired = token(exp=int(time.time()) - 60)
    wrong = token(secret="another-secret-that-is-long-enough-for-hs256")
    for bad in ("garbage", expired, wrong):
        async with connect(secured, "client-1", token=bad) as c:
            assert await c.next() == {"type": "error", "message": AUTH_FAILED}
            assert await c.closed_with() == 4401
    async with connect(secured, "client-1") as c:
        await c.send({"type": "auth", "token": "garbage"})
        assert await c.next() == {"type": "error", "message": AUTH_FAILED}
        assert await c.closed_with() == 4401
    assert await AgentMessage.all().count() == 0


async def test_token_projects_claim_limits_projects(secured: LiveServer) -> None:
    async with connect(secured, "client-1", token=token(projects=["project_002"])) as c:
        await c.chat("안녕하세요")
        assert await c.next() == {"type": "error", "message": PROJECT_FORBIDDEN}


# -- providers ---------------------------------------------------------------------------------


async def test_agent_uses_its_own_provider_and_model(sqlite_url: str, tmp_path: Path) -> None:
    agents = tmp_path / "agents.json"
    agent = {
        "name": "비서",
        "system_prompt": "당신은 비서입니다.",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "tools": [],
    }
    agents.write_text(
        json.dumps({"projects": [{"id": PROJECT, "agents": [agent]}]}), encoding="utf-8"
    )
    async with running_fake_openai() as fake:
        settings = make_settings(
            sqlite_url,
            agents_path=agents,
            openai_api_key="sk-test-not-a-real-key",
            openai_base_url=fake.url,
        )
        async with serve(settings) as live, connect(live, "client-1") as c:
            await c.chat("안녕", agent_name="비서")
            assert await c.reply() == "답변: 안녕"
    [request] = fake.requests
    assert request["model"] == "gpt-4o-mini" and "tools" not in request
    system = with_risk_guidance("당신은 비서입니다.")  # every agent's prompt says how to meet risk
    assert request["messages"][0] == {"role": "system", "content": system}


async def test_dead_sockets_are_dropped_by_protocol_pings(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url, ws_heartbeat_seconds=0.1)) as live:
        registry = live.app[AGENT_CHAT].registry
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{live.url}/ws/chat/silent", autoping=False) as ws,
        ):
            await until(lambda: registry.current("silent") is not None)
            msg = await asyncio.wait_for(ws.receive(), 10)
            assert msg.type is aiohttp.WSMsgType.PING  # never answered: the client is dead
            await until(lambda: registry.current("silent") is None)


async def test_shutdown_closes_sockets_as_going_away(sqlite_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with serve(make_settings(sqlite_url)) as live:
            ws = await http.ws_connect(f"{live.url}/ws/chat/client-1")
            client = AgentClient(ws)
            await client.send({"type": "ping"})
            assert await client.next() == {"type": "pong"}
        assert await client.closed_with() == aiohttp.WSCloseCode.GOING_AWAY
        await ws.close()
