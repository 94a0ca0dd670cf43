"""`make bench`: the `/chat` server under load, side by side with the NestJS-style reference.

    .venv/bin/python -m tests.bench.chat            # every scenario, MySQL and SQLite, + ref
    .venv/bin/python -m tests.bench.chat --quick    # tiny scenarios (the smoke test's)
    .venv/bin/python -m tests.bench.chat --db sqlite --no-ref --scenario 200x10

For each database and scenario a fresh server process (ours: `python -m server`; the
reference: `../shared/bench/ref_server.mjs`, MySQL only) on a fresh database, pointed at one
`fake_openai.mjs` with a fixed delay, is driven by Node processes running the real npm
`socket.io-client` over websocket (`tests/bench/js/loadgen.mjs`). One JSON line per scenario
and server goes to stdout, then one `ours/ref` ratio line per scenario. Progress goes to
stderr. Loopback only; every step is bounded in time; everything started here is stopped.

Figures: `join` is connect -> `chat-joined` (idle: connect -> connected), `turn` is
`send-message` -> the `ai-message` answering it, `turns_per_s` is all turns over the turn
phase (every client starts its first turn at once, after all have joined and the greeting),
`rss_per_conn_kib` is (server RSS with every client joined - RSS before) / clients.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]
LOADGEN = REPO / "tests" / "bench" / "js" / "loadgen.mjs"
SHARED_BENCH = Path(os.environ.get("BENCH_SHARED_DIR", REPO.parent / "shared" / "bench"))
REF_DIR = REPO / ".bench" / "ref"  # `npm install socket.io mysql2 openai` (make bench)
MYSQL_URL = os.environ.get("BENCH_MYSQL_URL", "mysql://root:@127.0.0.1:3306")
PYTHON = Path(sys.executable)

PROFILE: Path | None = None  # --profile: py-spy SVG of our server's turn phase
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Scenario:
    name: str
    clients: int
    turns: int  # 0: idle connections (memory per connection)
    procs: int = 1  # Node load-generator processes


FULL = (
    Scenario("200x10", 200, 10),
    Scenario("1000x5", 1000, 5),
    Scenario("idle10000", 10_000, 0, procs=2),
)
QUICK = (Scenario("5x2", 5, 2), Scenario("idle20", 20, 0))
EXTRA = (Scenario("idle2000", 2000, 0),)  # by name only (--scenario idle2000)


@dataclass
class Target:
    """One server under test: how to start it on a port and a database."""

    name: str  # "ours" | "ref"
    db: str  # "mysql" | "sqlite"
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path


@dataclass
class Outcome:
    join_ms: list[float] = field(default_factory=list)
    turn_ms: list[float] = field(default_factory=list)
    turn_start: int = 0
    turn_end: int = 0
    errors: int = 0
    cpu_seconds: float = 0.0  # the server's, during the turn phase
    error_samples: list[str] = field(default_factory=list)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest rank."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return round(ordered[rank - 1], 1)


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


async def wait_for_port(port: int, proc: asyncio.subprocess.Process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError(f"nothing listening on {port} after {timeout} s")


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()


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
            str(port),
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
        await stop(proc)


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
        await stop(proc)


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
        "DATABASE_URL": database_url + os.environ.get("BENCH_DB_QUERY", ""),
        "AI_PROVIDER": "openai",
        "OPENAI_API_KEY": "bench",
        "OPENAI_BASE_URL": llm_url,
        "SOCKETIO_TRANSPORTS": "websocket",
        "MAX_AI_REQUESTS_PER_MINUTE": "1000000",
        "LOG_LEVEL": "WARNING",
        "STUN_SERVER_URL": "",
    }
    # `running` appends the port as an argument, which `python -m server` ignores (PORT)
    argv = [str(PYTHON), "-m", "server"]
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
    return Target("ref", "mysql", ["node", str(script)], env, REF_DIR, scratch / "ref.log")


# -- one scenario ----------------------------------------------------------------------


async def _read_event(proc: asyncio.subprocess.Process, wanted: str, timeout: float) -> dict:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"load generator sent no {wanted!r} in {timeout} s")
        line = await asyncio.wait_for(proc.stdout.readline(), remaining)
        if not line:
            code = await proc.wait()
            raise RuntimeError(f"load generator ended (exit {code}) before {wanted!r}")
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(message, dict) and message.get("event") == wanted:
            return message


async def drive(
    url: str, scenario: Scenario, server_pid: int, timeout: float, profile: Path | None = None
) -> dict[str, Any]:
    """Run the load generators against `url`; the figures of one scenario. With `profile`,
    py-spy records the server during the turn phase into that SVG."""
    baseline = rss_kib(server_pid)
    shares = [scenario.clients // scenario.procs] * scenario.procs
    shares[0] += scenario.clients - sum(shares)
    procs = []
    for index, clients in enumerate(shares):
        config = {
            "url": url,
            "clients": clients,
            "turns": scenario.turns,
            "userPrefix": f"bench{index}",
            "deadlineMs": int(timeout * 1000),
        }
        procs.append(
            await asyncio.create_subprocess_exec(
                "node",
                str(LOADGEN),
                json.dumps(config),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=None,  # its own failures show up as they happen
                limit=64 * 1024 * 1024,  # the result line holds every latency
            )
        )
    outcome = Outcome()
    try:
        await asyncio.gather(*(_read_event(p, "ready", timeout) for p in procs))
        await asyncio.sleep(0.5)  # let the server settle what the last joins left
        loaded = rss_kib(server_pid)
        spy = await _start_profiler(server_pid, profile) if profile else None
        cpu_before = cpu_seconds(server_pid)
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            await p.stdin.drain()
        results = await asyncio.gather(*(_read_event(p, "result", timeout) for p in procs))
        outcome.cpu_seconds = cpu_seconds(server_pid) - cpu_before
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            await spy.wait()
        for r in results:
            if r.get("byTurn"):
                log(f"p50/p99 ms of each turn in order: {r['byTurn']}")
            outcome.join_ms += r["joinMs"]
            outcome.turn_ms += r["turnMs"]
            outcome.errors += r["errors"]
            outcome.error_samples += r["errorSamples"]
        outcome.turn_start = min((r["turnStart"] for r in results if r["turnStart"]), default=0)
        outcome.turn_end = max((r["turnEnd"] for r in results), default=0)
    finally:
        for p in procs:
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
            await p.wait()
    return _figures(scenario, outcome, baseline, loaded)


async def _start_profiler(pid: int, svg: Path) -> asyncio.subprocess.Process:
    py_spy = PYTHON.parent / "py-spy"
    return await asyncio.create_subprocess_exec(
        str(py_spy),
        "record",
        "--nonblocking",
        "-r",
        "200",
        "-o",
        str(svg),
        "--pid",
        str(pid),
        *(() if svg.suffix == ".svg" else ("--format", "raw")),  # raw: collapsed stacks
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
    )


def _figures(scenario: Scenario, o: Outcome, baseline: int, loaded: int) -> dict[str, Any]:
    seconds = (o.turn_end - o.turn_start) / 1000 if o.turn_start else 0
    # a client that failed counts once, however many of its turns it then missed
    unexplained = scenario.clients * scenario.turns - len(o.turn_ms) if not o.errors else 0
    return {
        "clients": scenario.clients,
        "turns": scenario.turns,
        "join_p50_ms": percentile(o.join_ms, 50),
        "join_p99_ms": percentile(o.join_ms, 99),
        "turn_p50_ms": percentile(o.turn_ms, 50),
        "turn_p99_ms": percentile(o.turn_ms, 99),
        "turns_per_s": round(len(o.turn_ms) / seconds, 1) if seconds > 0 else None,
        "cpu_ms_per_turn": round(1000 * o.cpu_seconds / len(o.turn_ms), 2) if o.turn_ms else None,
        "rss_per_conn_kib": round((loaded - baseline) / scenario.clients, 1),
        "rss_mib": round(loaded / 1024, 1),
        "errors": o.errors + unexplained,
        **({"error_samples": o.error_samples[:3]} if o.error_samples else {}),
    }


async def run_one(
    make_target: Any, db: str, scenario: Scenario, llm_url: str, scratch: Path, timeout: float
) -> dict[str, Any]:
    async with fresh_database(db, scratch) as database_url:
        target: Target = make_target(database_url, llm_url)
        port = free_port()
        log(f"{target.name} {db} {scenario.name}: starting")
        async with running(target, port) as proc:
            profile = PROFILE if target.name == "ours" else None
            figures = await drive(f"http://127.0.0.1:{port}", scenario, proc.pid, timeout, profile)
        line = {"server": target.name, "db": db, "scenario": scenario.name, **figures}
        if figures["errors"]:
            tail = target.log_path.read_text(errors="replace")[-2000:]
            log(f"{target.name} {db} {scenario.name}: errors; server log tail:\n{tail}")
        return line


RATIO_FIGURES = (
    "join_p50_ms",
    "join_p99_ms",
    "turn_p50_ms",
    "turn_p99_ms",
    "turns_per_s",
    "cpu_ms_per_turn",
    "rss_per_conn_kib",
)


def ratio(mine: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ratio": "ours/ref", "db": mine["db"], "scenario": mine["scenario"]}
    for key in RATIO_FIGURES:
        a, b = mine.get(key), theirs.get(key)
        out[key] = round(a / b, 2) if a is not None and b else None
    return out


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line, ensure_ascii=False), flush=True)


async def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    global PROFILE
    PROFILE = args.profile
    raise_fd_limit()
    scenarios = QUICK if args.quick else FULL
    if args.scenario:
        scenarios = tuple(s for s in (*FULL, *QUICK, *EXTRA) if s.name in args.scenario)
    dbs = [d for d in args.db.split(",") if d]
    if "mysql" in dbs and not mysql_reachable():
        log(f"MySQL not reachable at {MYSQL_URL}: MySQL scenarios skipped")
        dbs.remove("mysql")
    with_ref = not args.no_ref and "mysql" in dbs
    if with_ref and not (REF_DIR / "node_modules" / "socket.io").is_dir():
        log(f"{REF_DIR}/node_modules missing (run `make bench`): the reference is skipped")
        with_ref = False
    errors = 0
    with tempfile.TemporaryDirectory(prefix="mobok-bench-") as tmp:
        scratch = Path(tmp)
        async with fake_openai(args.fake_delay_ms) as llm_url:

            async def measure(name: str, db: str, scenario: Scenario) -> dict[str, Any]:
                def target(url: str, llm: str) -> Target:
                    if name == "ref":
                        return ref(url, llm, scratch)
                    return ours(db, url, llm, scratch, args.source)

                try:
                    line = await run_one(target, db, scenario, llm_url, scratch, args.timeout)
                except Exception as exc:  # one broken run must not hide the others
                    log(f"{name} {db} {scenario.name} failed: {exc!r}")
                    line = {"server": name, "db": db, "scenario": scenario.name, "errors": 1}
                    line["error_samples"] = [repr(exc)[:300]]
                emit(line)
                return line

            for db in dbs:
                for scenario in scenarios:
                    ratios = []
                    # ours and the reference alternate, so that both meet the same noise
                    for _ in range(args.repeat):
                        mine = await measure("ours", db, scenario)
                        errors += mine["errors"]
                        if with_ref and db == "mysql":
                            theirs = await measure("ref", db, scenario)
                            ratios.append(ratio(mine, theirs))
                            emit(ratios[-1])
                    if len(ratios) > 1:
                        emit(median_ratio(ratios))
    return 1 if errors else 0


def median_ratio(ratios: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out = {**ratios[0], "ratio": f"ours/ref, median of {len(ratios)}"}
    for key in RATIO_FIGURES:
        values = [r[key] for r in ratios if r.get(key) is not None]
        out[key] = round(statistics.median(values), 2) if values else None
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny scenarios (smoke test)")
    parser.add_argument("--db", default="mysql,sqlite", help="comma-separated: mysql,sqlite")
    parser.add_argument("--no-ref", action="store_true", help="skip the reference server")
    parser.add_argument("--scenario", action="append", help="only these (e.g. 1000x5)")
    parser.add_argument("--fake-delay-ms", type=int, default=0, help="the fake model's delay")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per scenario")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each scenario (ours and ref alternate)"
    )
    parser.add_argument("--profile", type=Path, help="py-spy flame graph of our server (SVG)")
    parser.add_argument(
        "--source", type=Path, default=REPO, help="the tree whose `server` is measured"
    )
    return parser


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
