"""What a `make bench` run needs around the load (`bench/chat.py`): the servers under
test as processes, the fake model, fresh databases, and the process figures (/proc)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import resource
import shutil
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from tests.support.processes import free_port, stop, wait_for_port

REPO = Path(__file__).resolve().parents[1]
SHARED_BENCH = Path(os.environ.get("BENCH_SHARED_DIR", REPO.parent / "shared" / "bench"))
REF_DIR = REPO / ".bench" / "ref"  # `npm install socket.io mysql2 openai` (make bench)
MYSQL_URL = os.environ.get("BENCH_MYSQL_URL", "mysql://root:@127.0.0.1:3306")
PYTHON = Path(sys.executable)

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


@dataclass
class Target:
    """One server under test: how to start it on a port and a database."""

    name: str  # "ours" | "ref"
    db: str  # "mysql" | "sqlite"
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    port_in_argv: bool = False  # the reference takes its port as an argument; ours reads PORT


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest rank."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return round(ordered[rank - 1], 1)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def raise_fd_limit() -> None:
    """10,000 sockets on each side: every child inherits this process's limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


# -- processes -------------------------------------------------------------------------


def _append(path: Path) -> IO[bytes]:
    return path.open("ab")


def _remove_with_journals(path: Path) -> None:
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()


@contextlib.asynccontextmanager
async def running(target: Target, port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    with _append(target.log_path) as server_log:
        proc = await asyncio.create_subprocess_exec(
            *target.argv,
            *([str(port)] if target.port_in_argv else []),
            cwd=target.cwd,
            env={**target.env, "PORT": str(port)},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=server_log,
            stderr=server_log,
        )
    try:
        try:
            await wait_for_port(port, proc, START_TIMEOUT_S)
        except Exception:
            tail = target.log_path.read_text(errors="replace")[-3000:]
            log(f"{target.name} did not start; its log ends:\n{tail}")
            raise
        yield proc
    finally:
        await stop(proc, STOP_TIMEOUT_S)


@contextlib.asynccontextmanager
async def fake_openai(delay_ms: int) -> AsyncIterator[str]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(SHARED_BENCH / "fake_openai.mjs"),
        str(port),
        env={**os.environ, "FAKE_DELAY_MS": str(delay_ms)},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await wait_for_port(port, proc, START_TIMEOUT_S)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await stop(proc, STOP_TIMEOUT_S)


# -- databases -------------------------------------------------------------------------


def _mysql_connect() -> Any:
    import pymysql  # installed with aiomysql

    parts = urlsplit(MYSQL_URL)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        connect_timeout=5,
    )


def _mysql_execute(sql: str) -> None:
    conn = _mysql_connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def mysql_reachable() -> bool:
    try:
        _mysql_connect().close()
    except Exception:
        return False
    return True


@contextlib.asynccontextmanager
async def fresh_database(db: str, scratch: Path) -> AsyncIterator[str]:
    """A URL of a new, empty database, dropped (or deleted) afterwards."""
    if db == "sqlite":
        path = scratch / f"bench-{uuid.uuid4().hex[:8]}.sqlite3"
        try:
            yield f"sqlite://{path}"
        finally:
            _remove_with_journals(path)
        return
    name = f"mobok_bench_{uuid.uuid4().hex[:10]}"
    await _retrying(
        lambda: _mysql_execute(
            f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
    )
    try:
        yield f"{MYSQL_URL.rstrip('/')}/{name}"
    finally:
        await _retrying(lambda: _mysql_execute(f"DROP DATABASE IF EXISTS `{name}`"))


async def _retrying(work: Any, seconds: float = 30.0) -> None:
    """MariaDB may be restarting (another test's outage): try again for a while."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            await asyncio.to_thread(work)
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise
            log(f"MySQL: {exc}; retrying")
            await asyncio.sleep(1.0)


def ours(db: str, database_url: str, llm_url: str, scratch: Path, source: Path) -> Target:
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")},
        "PYTHONPATH": str(source),  # a copy of the tree may be measured (before/after)
        "HOST": "127.0.0.1",
        "DATABASE_URL": database_url,
        "AI_PROVIDER": "openai",
        "OPENAI_API_KEY": "bench",
        "OPENAI_BASE_URL": llm_url,
        "SOCKETIO_TRANSPORTS": "websocket",
        "MAX_AI_REQUESTS_PER_MINUTE": "1000000",
        "LOG_LEVEL": "WARNING",
        "STUN_SERVER_URL": "",
    }
    argv = [str(PYTHON), "-m", "server"]  # its port comes from PORT
    return Target("ours", db, argv, env, cwd=scratch, log_path=scratch / f"ours-{db}.log")


def ref(database_url: str, llm_url: str, scratch: Path) -> Target:
    script = REF_DIR / "ref_server.mjs"
    shutil.copyfile(SHARED_BENCH / "ref_server.mjs", script)  # resolves REF_DIR/node_modules
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")},
        "DB_URL": database_url,
        "OPENAI_BASE_URL": llm_url,
        "OPENAI_API_KEY": "bench",
    }
    return Target(
        "ref", "mysql", ["node", str(script)], env, REF_DIR, scratch / "ref.log", port_in_argv=True
    )
