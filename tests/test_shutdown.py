"""SIGTERM: the server tells its clients and exits, without waiting for their ping timeout."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
import socketio

from tests.support.processes import free_port, wait_for_port

pytestmark = pytest.mark.slow  # server processes and outages: seconds each

ROOT = Path(__file__).resolve().parent.parent
PING_TIMEOUT = 45  # python-engineio's ping interval + timeout: what a hung shutdown waits


async def test_sigterm_disconnects_clients_and_exits(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "DATABASE_URL": f"sqlite://{tmp_path / 'db.sqlite3'}",
        "AI_PROVIDER": "local",
    }
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    clients: list[socketio.AsyncClient] = []
    try:
        await wait_for_port(port, server, timeout=30)  # up once it accepts a connection
        gone: dict[str, asyncio.Event] = {}
        for transport in ("websocket", "polling"):
            client = socketio.AsyncClient(reconnection=False)
            gone[transport] = asyncio.Event()
            client.on("disconnect", gone[transport].set, namespace="/chat")
            await client.connect(
                f"http://127.0.0.1:{port}", namespaces=["/chat"], transports=[transport]
            )
            joined = await client.call("join-chat", {"userId": "u"}, namespace="/chat")
            assert "sessionId" in joined
            clients.append(client)

        server.send_signal(signal.SIGTERM)
        # well before the ping timeout, or the shutdown is waiting on the open connections
        code = await asyncio.wait_for(server.wait(), timeout=PING_TIMEOUT / 3)
        assert code == 0
        for transport, event in gone.items():
            await asyncio.wait_for(event.wait(), timeout=5)
            assert event.is_set(), transport
        assert server.stderr is not None
        log = (await server.stderr.read()).decode()
        assert "Traceback" not in log
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
        for client in clients:
            await client.eio.disconnect(abort=True)
