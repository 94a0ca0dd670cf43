"""A server as production runs it: `python -m server` as its own process, on a free port, with
its log in a file that tests can search for crashes."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parents[2]
# A log record's first line: `2024-01-01 10:00:00,000 WARNING name: message`. Tracebacks a
# record carries (a failure handled and reported, e.g. a model timeout) follow it.
LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) ")
# what Python, asyncio and aiohttp print about an exception nobody handled
UNHANDLED = (
    "Task exception was never retrieved",
    "Task was destroyed but it is pending",
    "Exception ignored in",
    "Exception in thread",
    "Unhandled exception",
    "Error handling request",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for_port(port: int, proc: asyncio.subprocess.Process, timeout: float) -> None:
    """Until `proc` accepts a TCP connection on `port` (it must not exit first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before listening")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError(f"nothing listening on {port} after {timeout} s")


async def stop(proc: asyncio.subprocess.Process, timeout: float) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds."""
    if proc.returncode is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()


@dataclass
class ServerProcess:
    url: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1)

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def crashes(self) -> list[str]:
        """Log lines that show an exception nobody handled: records at ERROR or above, what
        Python prints about unhandled exceptions, and any text outside a log record."""
        found: list[str] = []
        in_record = False
        for line in self.log().splitlines():
            record = LOG_RECORD.match(line)
            in_record = in_record or record is not None
            if (
                (record is not None and record["level"] in ("ERROR", "CRITICAL"))
                or any(marker in line for marker in UNHANDLED)
                or (not in_record and line.strip())
            ):
                found.append(line)
        return found


@asynccontextmanager
async def server_process(tmp_path: Path, **env: str) -> AsyncIterator[ServerProcess]:
    """`python -m server` on a free port with `env` on top of a neutral environment (SQLite
    in `tmp_path`, the offline model, no Redis, no auth), up and healthy; stopped after."""
    port = free_port()
    log_path = tmp_path / f"server-{port}.log"
    overrides = {
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "DATABASE_URL": f"sqlite://{tmp_path / f'db-{port}.sqlite3'}",
        "AI_PROVIDER": "local",
        # empty (read as unset) beats whatever a developer's `.env` says
        "REDIS_URL": "",
        "AUTH_SECRET": "",
        "OPENAI_API_KEY": "",
        "GEMINI_API_KEY": "",
        "LOG_LEVEL": "INFO",
        **env,
    }
    inherited = {k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"}
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server",
            cwd=ROOT,
            env={**inherited, **overrides},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log_file,
        )
    server = ServerProcess(f"http://127.0.0.1:{port}", process, log_path)
    try:
        await _wait_until_serving(server)
        yield server
    finally:
        if server.running:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=30)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _wait_until_serving(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            if not server.running:
                pytest.fail(f"the server exited at start:\n{server.log()[-3000:]}")
            try:
                async with http.get(f"{server.url}/api/v1/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail(f"the server did not come up:\n{server.log()[-3000:]}")


async def health(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/api/v1/health") as response:
            return response.status, await response.json()
