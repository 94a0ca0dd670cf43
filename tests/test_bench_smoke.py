"""`make bench` end to end in its quick mode, on SQLite only, without the reference server:
the real orchestrator starts the real server process, the fake model and the Node load
generator, and every JSON line it prints parses, with no errors. Figures are not asserted
(speed lives in the benchmark itself)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from bench.chat import LOADGEN, QUICK
from bench.harness import REPO, SHARED_BENCH
from tests.conftest import require

pytestmark = pytest.mark.bench

SMOKE_TIMEOUT_S = 100


def test_quick_bench_runs_clean_on_sqlite() -> None:
    require(shutil.which("node") is not None, "node is not installed (the load generator)")
    require(
        (LOADGEN.parent / "node_modules" / "socket.io-client").is_dir(),
        "bench/js/node_modules is missing (`make install` runs `npm ci` there)",
    )
    require((SHARED_BENCH / "fake_openai.mjs").is_file(), f"no fake model at {SHARED_BENCH}")
    done = subprocess.run(
        [sys.executable, "-m", "bench.chat", "--quick", "--db", "sqlite", "--no-ref"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert [line["scenario"] for line in lines] == [s.name for s in QUICK]
    for line, scenario in zip(lines, QUICK, strict=True):
        assert line["server"] == "ours" and line["db"] == "sqlite"
        assert line["errors"] == 0, line
        assert (line["clients"], line["turns"]) == (scenario.clients, scenario.turns)
        assert line["join_p50_ms"] is not None and line["rss_per_conn_kib"] is not None
        if scenario.turns:
            assert line["turn_p50_ms"] is not None and line["turns_per_s"] > 0
        else:
            assert line["turn_p50_ms"] is None
