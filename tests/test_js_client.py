"""The /chat namespace driven by the real npm socket.io-client v4 (tests/js/chat_client.test.mjs).

The server runs in this test's event loop, so node runs as an asyncio subprocess.
Needs `node` and `npm ci` in tests/js; without them the test skips, or fails under CI=true.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path
from typing import Protocol

import pytest

REPO = Path(__file__).resolve().parent.parent
JS_DIR = REPO / "tests" / "js"
NODE_SUITE = JS_DIR / "chat_client.test.mjs"
NODE_TIMEOUT_S = 100


class RunningServer(Protocol):
    url: str


def require(available: bool, reason: str) -> None:
    """Skip when a tool is missing on a developer's machine; CI must have it."""
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: CI must install it)")
    pytest.skip(reason)


@pytest.fixture
def node() -> str:
    node = shutil.which("node")
    require(node is not None, "node is not installed (apt-get install -y nodejs npm)")
    require(
        (JS_DIR / "node_modules" / "socket.io-client").is_dir(),
        "tests/js/node_modules is missing (run `npm ci` in tests/js)",
    )
    assert node is not None
    return node


async def test_real_socketio_js_client(node: str, server: RunningServer) -> None:
    proc = await asyncio.create_subprocess_exec(
        node,
        "--test",
        # Exit once the tests are done: python-engineio holds a closed polling client's last
        # long-poll GET open for ping_interval + ping_timeout (45 s), which keeps node alive.
        "--test-force-exit",
        str(NODE_SUITE.relative_to(REPO)),
        cwd=REPO,
        env={**os.environ, "CHAT_SERVER_URL": server.url},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        raw, _ = await asyncio.wait_for(proc.communicate(), NODE_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        raw, _ = await proc.communicate()
        pytest.fail(
            f"node --test did not finish in {NODE_TIMEOUT_S} s:\n{raw.decode(errors='replace')}"
        )
    output = raw.decode(errors="replace")

    assert proc.returncode == 0, f"node --test exited {proc.returncode}:\n{output}"
    assert re.search(r"^# pass [1-9]", output, re.MULTILINE), f"no test ran:\n{output}"
    assert re.search(r"^# fail 0$", output, re.MULTILINE), output
