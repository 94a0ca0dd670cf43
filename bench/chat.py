"""`make bench`: the `/chat` server under load, side by side with the NestJS-style reference.

    .venv/bin/python -m bench.chat            # every scenario, MySQL and SQLite, + ref
    .venv/bin/python -m bench.chat --quick    # tiny scenarios (the smoke test's)
    .venv/bin/python -m bench.chat --db sqlite --no-ref --scenario 200x10

For each database and scenario a fresh server process (ours: `python -m server`; the
reference: `../shared/bench/ref_server.mjs`, MySQL only) on a fresh database, pointed at one
`fake_openai.mjs` with a fixed delay, is driven by Node processes running the real npm
`socket.io-client` over websocket (`bench/js/loadgen.mjs`). One JSON line per scenario
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
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import (
    MYSQL_URL,
    PYTHON,
    REF_DIR,
    REPO,
    Target,
    cpu_seconds,
    fake_openai,
    free_port,
    fresh_database,
    log,
    mysql_reachable,
    ours,
    percentile,
    raise_fd_limit,
    ref,
    rss_kib,
    running,
)

LOADGEN = REPO / "bench" / "js" / "loadgen.mjs"


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
class Outcome:
    join_ms: list[float] = field(default_factory=list)
    turn_ms: list[float] = field(default_factory=list)
    turn_start: int = 0
    turn_end: int = 0
    errors: int = 0
    cpu_seconds: float = 0.0  # the server's, during the turn phase
    error_samples: list[str] = field(default_factory=list)


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
    make_target: Callable[[str, str], Target],
    db: str,
    scenario: Scenario,
    llm_url: str,
    scratch: Path,
    timeout: float,
    profile: Path | None = None,
) -> dict[str, Any]:
    """One server on a fresh database under one scenario; `profile` (py-spy) is ours only."""
    async with fresh_database(db, scratch) as database_url:
        target = make_target(database_url, llm_url)
        port = free_port()
        log(f"{target.name} {db} {scenario.name}: starting")
        async with running(target, port) as proc:
            spy = profile if target.name == "ours" else None
            figures = await drive(f"http://127.0.0.1:{port}", scenario, proc.pid, timeout, spy)
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
    raise_fd_limit()
    scenarios: tuple[Scenario, ...] = QUICK if args.quick else FULL
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
                    line = await run_one(
                        target, db, scenario, llm_url, scratch, args.timeout, args.profile
                    )
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
