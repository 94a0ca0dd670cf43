"""Start-up that explains itself (§7): one line and exit code 2 for a bad setting, a
database that cannot be reached, a port in use; `--help`; the counseling backend's names."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import pytest
from aiohttp import ClientSession

from server.config import Settings
from server.startup import StartupError, load_settings
from tests.conftest import make_settings, serve
from tests.support.fakes.gemini_server import running_fake_gemini
from tests.support.processes import ROOT, free_port
from tests.support.sio import RecordingClient

NEUTRAL = {
    "HOST": "127.0.0.1",
    "AI_PROVIDER": "local",
    "REDIS_URL": "",
    "AUTH_SECRET": "",
    "OPENAI_API_KEY": "",
    "GEMINI_API_KEY": "",
}


async def run_server(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    """`python -m server` until it exits (60 s at most): exit code, stdout, stderr."""
    values = {
        "PORT": str(free_port()),
        "DATABASE_URL": f"sqlite://{tmp_path / 'start.sqlite3'}",
        **NEUTRAL,
        **env,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        *args,
        cwd=ROOT,
        env={**os.environ, **values},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail("the server did not exit: it started instead of refusing")
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def last_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    return lines[-1]


@pytest.mark.slow  # a server process of its own
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PORT": "abc"}, "mobok: bad setting: PORT: Input should be a valid integer"),
        ({"PORT": "70000"}, "mobok: bad setting: PORT: Input should be less than or equal"),
        ({"AI_PROVIDER": "claude"}, "mobok: bad setting: AI_PROVIDER: Input should be 'openai'"),
        ({"SOCKETIO_TRANSPORTS": "carrier"}, "mobok: bad setting: SOCKETIO_TRANSPORTS: unknown"),
        ({"DATABASE_URL": "oracle://x"}, "mobok: bad setting: DATABASE_URL must start with"),
        (
            {"AUTH_SECRET": "s" * 32, "JWT_SECRET_KEY": "t" * 32},
            "mobok: bad setting: AUTH_SECRET and JWT_SECRET_KEY are both set and differ",
        ),
    ],
)
async def test_a_bad_setting_is_one_line_and_exit_2(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    code, _, err = await run_server(tmp_path, **env)
    assert code == 2
    assert last_line(err).startswith(expected), err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow  # a server process of its own
async def test_a_secret_is_never_repeated_back(tmp_path: Path) -> None:
    code, _, err = await run_server(tmp_path, GEMINI_TOP_K="0", AUTH_SECRET="", DB_PASSWORD="x")
    assert code == 2 and "GEMINI_TOP_K" in err and "(got '0')" in err
    with pytest.raises(StartupError) as caught:
        load_settings(_env_file=None, retention_days="hunter2-secret", admin_token=["x"])
    assert "ADMIN_TOKEN" in str(caught.value) and "RETENTION_DAYS" in str(caught.value)
    assert "['x']" not in str(caught.value)


@pytest.mark.slow  # a server process of its own
@pytest.mark.parametrize("scheme", ["mysql", "postgres"])
async def test_an_unreachable_database_names_host_port_and_reason(
    tmp_path: Path, scheme: str
) -> None:
    port = free_port()  # nobody listens there
    url = f"{scheme}://someone:topsecret@127.0.0.1:{port}/welfare"
    code, _, err = await run_server(tmp_path, DATABASE_URL=url)
    assert code == 2
    line = last_line(err)
    assert line.startswith(f"mobok: cannot use the database {scheme} 127.0.0.1:{port}/welfare: ")
    assert "refused" in line.lower(), line
    assert "topsecret" not in err


@pytest.mark.slow  # a server process of its own
async def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = await run_server(tmp_path, PORT=str(port))
    assert code == 2
    assert last_line(err) == (
        f"mobok: cannot listen on 127.0.0.1:{port}: "
        "the port is already in use (another server running?)"
    )


@pytest.mark.slow  # a server process of its own
async def test_help_lists_every_setting_with_its_default_and_does_not_start(
    tmp_path: Path,
) -> None:
    code, out, err = await run_server(tmp_path, "--help")
    assert code == 0 and err == ""
    rows = {
        line.split()[0]: line.split(None, 1)[1] for line in out.splitlines()[5:] if line[:2] == "  "
    }
    assert set(rows) == {name.upper() for name in Settings.model_fields}
    assert rows["PORT"] == "3000" and rows["MAX_MESSAGE_LENGTH"] == "2000"
    assert rows["RETENTION_DAYS"] == "-"
    code, _, err = await run_server(tmp_path, "--bogus")
    assert code == 2 and "unknown argument" in err
    assert not (tmp_path / "start.sqlite3").exists()  # neither started anything


def test_jwt_secret_key_is_an_alias_of_auth_secret() -> None:
    secret = "k" * 40
    assert make_settings("sqlite://x", jwt_secret_key=secret).auth_secret == secret
    same = make_settings("sqlite://x", jwt_secret_key=secret, auth_secret=secret)
    assert same.auth_secret == secret


async def test_jwt_secret_key_turns_authentication_on(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, jwt_secret_key="k" * 40)
    async with serve(settings) as live, ClientSession() as http:
        async with http.post(
            live.url + "/api/v1/calls", json={"callerNumber": "010-1234-5678"}
        ) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["message"] == "인증이 필요합니다"


async def test_health_answers_at_the_counseling_backend_path(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url)) as live, ClientSession() as http:
        async with http.get(live.url + "/health") as resp:
            body = await resp.json()
            assert resp.status == 200
            assert body["status"] == "ok" and body["db"] == "ok"
        async with http.get(live.url + "/api/docs/openapi.json") as resp:
            assert "/health" in (await resp.json())["paths"]


async def test_gemini_generation_settings_reach_the_model(sqlite_url: str) -> None:
    async with running_fake_gemini() as fake:
        settings = make_settings(
            sqlite_url,
            ai_provider="gemini",
            gemini_api_key="g-test",
            gemini_base_url=fake.url,
            gemini_temperature=0.3,
            gemini_top_p=0.9,
            gemini_top_k=32,
            gemini_max_output_tokens=512,
        )
        async with serve(settings) as live:
            client = RecordingClient()
            await client.connect(live.url)
            joined = await client.call("join-chat", {"userId": "u1"})
            await client.emit("send-message", {"sessionId": joined["sessionId"], "message": "안녕"})
            await client.next("ai-message")
            await client.next("ai-message")
            await client.close()
    config = fake.requests[-1].body["generationConfig"]
    assert config["temperature"] == 0.3 and config["topP"] == 0.9
    assert config["topK"] == 32 and config["maxOutputTokens"] == 512


async def test_make_help_lists_the_targets() -> None:
    proc = await asyncio.create_subprocess_exec(
        "make", "-s", "help", cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    targets = {line.split()[1] for line in out.decode().splitlines()}
    assert {"run", "test", "bench", "lint", "help"} <= targets
