"""`make bench-voice`: N concurrent voice calls against the real server process.

    .venv/bin/python -m bench.voice                       # fake providers, N = 1..40
    .venv/bin/python -m bench.voice --providers local     # Whisper base + espeak-ng
    .venv/bin/python -m bench.voice --calls 1 --turns 1   # the smoke run
    .venv/bin/python -m bench.voice --calls 20 --profile .bench/voice.svg

One `python -m server` process (SQLite, RTC_ICE_LOOPBACK=1) serves the whole sweep. With
`--providers fake` it talks to `bench/voice_fake.py` (its own process) for STT, the
model and TTS, each with a fixed delay, so provider time is known and what is left is the
server's own; with `--providers local` it uses the offline pair (Whisper base, espeak-ng)
and the local model. Callers (`voice_caller.py`, aiortc peers in this process) place their
calls as the call page does, wait for the greeting, then each speaks `--turns` times (a
WAV made with espeak-ng, after a random pause) and waits until the AI has answered and
fallen silent. Calls start 100 ms apart; their turns then overlap at random.

Per scenario (N calls) one JSON line on stdout: the stages of every turn as the server
measured them (its `voice turn latency` log lines: p50/p90/max), the callers' own end of
speech -> first AI audio, the server's `/metrics` means over the scenario, CPU, and audio
punctuality. Every turn's breakdown goes to `--detail` (JSON lines), the server's log to
`--log` (both under `.bench/` by default). The last line gives the largest N without an
audio underrun. `--wait-quiet 40` waits before each N for the rest of a shared machine to
calm down; `--nice -10` gives the measured processes priority.

Underrun (what "no audio underrun" means here): an outgoing 20 ms frame of the AI's track
that the server hands to its sender more than 60 ms after the frame's slot on the call's
clock (`server.voice.outbound`: a caller whose jitter buffer holds 60 ms of audio would
have nothing left to play, and hear a gap), counted by the server
(`mobok_voice_late_frames_total{kind="gap"}`, read before the calls hang up), or a packet
that never reaches the caller (a gap in the RTP sequence numbers). A scenario passes when
it has none, every call connected and every reply came. Beside it: `server_late_frames`
(> 20 ms), `server_resyncs` (> 200 ms: the track restarted its clock), and the callers' own
view, `client_underruns`: the same 60 ms rule applied to arrival times at the caller, which
also counts this process's own delays in taking packets in (it shares the two cores; RTP
audio carries no send time to separate the two).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from bench.voice_caller import (
    BenchCaller,
    Punctuality,
    Utterance,
    encode_utterance,
    noise_bed,
    silence_packet,
)
from bench.voice_fake import BenchDelays
from bench.voice_report import (
    ServerLog,
    TurnResult,
    late_frames,
    metric_means_ms,
    parse_metrics,
    percentile,
    spread,
    summarize,
    turn_events,
)
from server.ai.audio import decode_to_pcm, wav_bytes
from tests.support.processes import free_port, stop, wait_for_port

REPO = Path(__file__).resolve().parents[1]
PYTHON = Path(sys.executable)
OUT_DIR = REPO / ".bench"
START_TIMEOUT_S = 60.0
VOICE_STOP_TIMEOUT_S = 40.0  # a call turn may still be finishing
DIAL_SPACING_S = 0.1
QUIET_S = 0.8  # the AI has finished answering once its track has been silent this long
# what each provider pair is asked: pocketsphinx hears this voice and sentence well, and
# the local model answers a thank-you briefly; the fake answers anything the same way
PCM_RATE = 48_000
UTTERANCES = {
    "fake": ("I want to know about services for senior citizens", "en-us+f2"),
    "local": ("thank you", "en-us+f2"),
}
TURN_TIMEOUT_S = {"fake": 30.0, "local": 180.0}


def log(message: str) -> None:
    print(f"[bench-voice {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line, ensure_ascii=False), flush=True)


def espeak_wav(text: str, voice: str) -> bytes:
    result = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "150", "--stdout", text],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return result.stdout


def paused_wav(text: str, voice: str, pause: float) -> tuple[bytes, list[tuple[float, str]]]:
    """`text` said in two halves with `pause` seconds of silence between, as a WAV (cut
    after its word `about`, else at its middle: "I want to know about ... services for
    senior citizens", the issue's example); and what a speech recognizer would hear in each
    segment the server cuts it in, with the segment's expected length: ~0.2 s of pre-roll
    and 0.2 s of pause around the first half, the rest of the pause and 0.2 s around the
    second."""
    words = text.split()
    cut = words.index("about") + 1 if "about" in words else len(words) // 2
    halves = " ".join(words[:cut]), " ".join(words[cut:])
    first, rest = (trimmed_pcm(espeak_wav(half, voice)) for half in halves)
    pcm = first + bytes(round(pause * PCM_RATE) * 2) + rest
    seconds = [len(first) / 2 / PCM_RATE + 0.4, len(rest) / 2 / PCM_RATE + pause]
    heard = [(seconds[0], halves[0]), (seconds[1], halves[1] + ".")]
    return wav_bytes(pcm, PCM_RATE), heard


def trimmed_pcm(wav: bytes) -> bytes:
    """The speech of an espeak-ng WAV as 48 kHz s16, without its silent ends."""
    samples = np.frombuffer(decode_to_pcm(wav, PCM_RATE), dtype="<i2")
    loud = np.flatnonzero(np.abs(samples) > 300)
    return samples[loud[0] : loud[-1] + 1].tobytes()


def cpu_seconds(pid: int, children: bool = False) -> float:
    """CPU time of `pid`, and of its live children (the server's STT worker)."""
    total = 0.0
    pids = [pid]
    if children:
        with contextlib.suppress(OSError):
            tasks = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            pids += [int(c) for c in tasks]
    for one in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def wait_until_quiet(max_busy_pct: float, deadline: float) -> None:
    """On a shared machine: wait (until `deadline`) for 3 s in which everything else keeps
    the cores busy less than `max_busy_pct` (% of one core) before measuring."""
    while time.monotonic() < deadline:
        before = machine_busy_seconds()
        await asyncio.sleep(3)
        busy = (machine_busy_seconds() - before) / 3 * 100
        if busy < max_busy_pct:
            return
        log(f"machine busy ({busy:.0f}% of a core, wanted < {max_busy_pct:.0f}%): waiting")
    log("machine still busy at the time budget's end: measuring anyway")


# -- processes -------------------------------------------------------------------------


@dataclass
class Server:
    proc: asyncio.subprocess.Process
    url: str
    log_path: Path


@contextlib.asynccontextmanager
async def running_server(
    providers: str,
    llm_url: str | None,
    scratch: Path,
    log_path: Path,
    extra_env: Sequence[str] = (),
) -> AsyncIterator[Server]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")},
        "PYTHONPATH": str(REPO),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATABASE_URL": f"sqlite://{scratch / 'bench-voice.sqlite3'}",
        "RTC_ICE_LOOPBACK": "1",
        "STUN_SERVER_URL": "",
        "VOICE_GREETING_DELAY_MS": "300",
        "LOG_LEVEL": "INFO",  # the per-turn latency and per-call pacing lines are INFO
        # every caller of the sweep dials from 127.0.0.1: one "user" for the spend limit
        "MAX_CALLS_PER_HOUR": "100000",
    }
    if providers == "fake":
        assert llm_url is not None
        env |= {"AI_PROVIDER": "openai", "OPENAI_API_KEY": "bench", "OPENAI_BASE_URL": llm_url}
    else:
        env |= {"AI_PROVIDER": "local", "STT_LANGUAGE": "en"}  # the callers speak English
    for setting in extra_env:  # --server-env NAME=VALUE: e.g. VAD_SILENCE_MS=300
        name, _, value = setting.partition("=")
        env[name] = value
    server_log = await asyncio.to_thread(open, log_path, "wb")
    with server_log:
        proc = await asyncio.create_subprocess_exec(
            str(PYTHON), "-m", "server",
            cwd=scratch, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=server_log, stderr=server_log,
        )  # fmt: skip
    try:
        await wait_for_port(port, proc, START_TIMEOUT_S)
        yield Server(proc, f"http://127.0.0.1:{port}", log_path)
    finally:
        await stop(proc, VOICE_STOP_TIMEOUT_S)


@contextlib.asynccontextmanager
async def fake_process(
    delays: BenchDelays, transcripts: Sequence[tuple[float, str]] = ()
) -> AsyncIterator[tuple[str, int]]:
    """The fake provider in a process of its own: it must not share this loop's lag.
    Yields its base URL and pid. `transcripts`: (seconds, words) of the segments the
    callers' speech is cut in, for its STT to answer by length."""
    args = [f"--{k.replace('_', '-')}={v}" for k, v in delays.as_dict().items()]
    if transcripts:
        args.append(f"--transcripts={json.dumps(transcripts)}")
    proc = await asyncio.create_subprocess_exec(
        str(PYTHON), "-m", "bench.voice_fake", *args,
        cwd=REPO, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
        if not line.startswith(b"http"):
            raise RuntimeError("the fake provider did not start")
        yield line.decode().strip(), proc.pid
    finally:
        await stop(proc, VOICE_STOP_TIMEOUT_S)


@contextlib.asynccontextmanager
async def profiling(pid: int, svg: Path | None) -> AsyncIterator[None]:
    if svg is None:
        yield
        return
    proc = await asyncio.create_subprocess_exec(
        str(PYTHON.parent / "py-spy"), "record", "--nonblocking", "--gil", "-r", "100",
        "-o", str(svg), "--pid", str(pid),
        *(() if svg.suffix == ".svg" else ("--format", "raw")),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        log(f"profile written to {svg}")


# -- one scenario ----------------------------------------------------------------------


@dataclass
class Scenario:
    providers: str
    calls: int
    turns: int
    buffer_ms: float
    utterance: Utterance
    silence: bytes
    fake_pid: int | None = None
    seed: int = 1
    noise_db: float | None = None  # --noise-db: pink noise this far under the speech ...
    bed: tuple[bytes, ...] = ()  # ... between utterances (and mixed into them)
    phantom_seconds: float = 0.0  # noise alone before the first turn: no reply may come
    barge_in: bool = False  # each turn, speak again over the AI's reply
    pause_ms: float | None = None  # --pause-ms: a pause this long in the middle of each turn

    @property
    def label(self) -> dict[str, Any]:
        label: dict[str, Any] = {"providers": self.providers, "calls": self.calls}
        if self.noise_db is not None:
            label["noise_db"] = self.noise_db
        if self.barge_in:
            label["barge_in"] = True
        if self.pause_ms is not None:
            label["pause_ms"] = self.pause_ms
        return label


@dataclass
class CallOutcome:
    number: int
    caller: BenchCaller
    turns: list[float | None] = field(default_factory=list)  # client first audio, ms
    barge_in_ms: list[float] = field(default_factory=list)  # caller speaks -> AI silent
    phantom_replies: int = 0  # replies to noise alone
    early_replies: int = 0  # turns answered before the caller had finished them
    error: str | None = None


class LoopLag:
    """This process's own event loop lag: a load generator that is late itself would blame
    the server for its own delays."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            self.samples.append((time.monotonic() - before - 0.01) * 1000)


async def run_call(
    server: Server,
    http: aiohttp.ClientSession,
    scenario: Scenario,
    number: int,
    rng: random.Random,
) -> CallOutcome:
    caller = BenchCaller(server.url, http, number)
    outcome = CallOutcome(number, caller)
    timeout = TURN_TIMEOUT_S[scenario.providers]
    try:
        await asyncio.sleep(number * DIAL_SPACING_S)
        await caller.dial(scenario.silence, bed=scenario.bed)
        if await caller.reply_heard(0.0, QUIET_S, timeout) is None:
            raise RuntimeError("no greeting")
        if scenario.phantom_seconds:
            quiet_from = time.monotonic()
            await asyncio.sleep(scenario.phantom_seconds + 2.0)  # the longest silence after
            outcome.phantom_replies = sum(1 for at, _ in caller.responses if at > quiet_from)
        for _ in range(scenario.turns):
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            started = time.monotonic()
            ended = await caller.say(scenario.utterance)
            if any(started < at < ended for at, _ in caller.responses):
                outcome.early_replies += 1  # a pause taken for the end of the turn
            if scenario.barge_in:
                ended = await _barge_in(caller, scenario, outcome, ended, rng, timeout)
            first_sound = await caller.reply_heard(ended, QUIET_S, timeout)
            if first_sound is None:
                raise RuntimeError(f"no reply to turn {len(outcome.turns) + 1}")
            outcome.turns.append(round((first_sound - ended) * 1000, 1))
    except Exception as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"[:200]
    return outcome


async def _barge_in(
    caller: BenchCaller,
    scenario: Scenario,
    outcome: CallOutcome,
    ended: float,
    rng: random.Random,
    timeout: float,
) -> float:
    """Once the reply to the turn is heard, speak again over it: time from the caller's first
    voiced frame to the AI's silence at the caller. Returns the end of the new speech."""
    deadline = time.monotonic() + timeout
    while caller.heard.first_sound_after(ended) is None:
        if time.monotonic() > deadline:
            raise RuntimeError("no reply to speak over")
        await asyncio.sleep(0.02)
    await asyncio.sleep(rng.uniform(0.2, 0.5))
    playing = caller.start_saying(scenario.utterance)
    started = await playing.first_voiced_sent
    last = await playing.last_voiced_sent
    stopped = caller.heard.silent_from(started, 0.3)
    if stopped is not None:
        outcome.barge_in_ms.append(round((stopped - started) * 1000, 1))
    return last


async def scrape(http: aiohttp.ClientSession, server: Server) -> dict[str, float]:
    async with http.get(server.url + "/metrics") as response:
        return parse_metrics(await response.text())


async def wait_no_calls(http: aiohttp.ClientSession, server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (await scrape(http, server)).get("mobok_active_calls", 0) == 0:
            return
        await asyncio.sleep(0.2)
    log("calls still active after hanging up")


async def run_scenario(
    server: Server, scenario: Scenario, detail: Any, profile: Path | None
) -> dict[str, Any]:
    log(f"{scenario.providers}: {scenario.calls} calls x {scenario.turns} turns")
    rng = random.Random(scenario.seed + scenario.calls)
    log_offset = server.log_path.stat().st_size
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        before = await scrape(http, server)
        cpu_before, started = _cpu(server, scenario), time.monotonic()
        peak = 0.0
        async with LoopLag() as lag, profiling(server.proc.pid, profile):
            tasks = [
                asyncio.create_task(run_call(server, http, scenario, n, rng))
                for n in range(scenario.calls)
            ]
            while not all(t.done() for t in tasks):
                await asyncio.wait(tasks, timeout=1.0)
                peak = max(peak, (await scrape(http, server)).get("mobok_active_calls", 0))
            outcomes = [t.result() for t in tasks]
            # the window punctuality is judged in ends here: hanging up 30 calls at once is
            # no call's audio
            turns_done = time.monotonic()
            elapsed = turns_done - started
            cpu = [b - a for a, b in zip(cpu_before, _cpu(server, scenario), strict=True)]
            in_call = await scrape(http, server)  # before hanging up: the window's figures
            await asyncio.gather(*(o.caller.hang_up() for o in outcomes), return_exceptions=True)
        await wait_no_calls(http, server, 30)
        after = await scrape(http, server)
    server_log = ServerLog.read(server.log_path, log_offset)

    turns: list[TurnResult] = []
    heard = [_punctuality(o.caller, turns_done, scenario) for o in outcomes]
    for o in outcomes:
        logged = server_log.turns.get(o.caller.call.get("id", ""), [])
        for index, client_ms in enumerate(o.turns):
            server_turn = logged[index] if index < len(logged) else {}
            turns.append(TurnResult(o.number + 1, index + 1, client_ms, server_turn))
    for turn in turns:
        detail.write(json.dumps(turn.line(scenario.label), ensure_ascii=False) + "\n")
    errors = [o.error for o in outcomes if o.error]
    lost = sum(p.lost for p in heard)
    barge_in = [ms for o in outcomes for ms in o.barge_in_ms]
    pacing = [server_log.pacing[o.caller.call["id"]] for o in outcomes
              if o.caller.call.get("id") in server_log.pacing]  # fmt: skip
    summary = summarize(turns, pacing)
    late = late_frames(before, in_call)
    line: dict[str, Any] = {
        "scenario": "voice",
        **scenario.label,
        "turns": len(turns),
        "errors": len(errors),
        **summary,
        # the server's: frames handed to the sender > 60 ms after their slot
        "underruns": late["gap"],
        "server_late_frames": late["late"],
        "server_resyncs": late["resync"],
        "lost_packets": lost,
        # the callers': the same judged on arrival, this process's own delays included
        "client_underruns": sum(p.underruns for p in heard),
        "client_max_late_ms": _round(max((p.max_late_ms for p in heard), default=None)),
        "ok": not errors and late["gap"] == 0 and lost == 0,
        "peak_active_calls": peak,
        # % of one core; `other_cpu_pct`: whatever else ran on the machine meanwhile
        "server_cpu_pct": round(cpu[0] / elapsed * 100, 1),
        "bench_cpu_pct": round((cpu[1] + cpu[2]) / elapsed * 100, 1),
        "other_cpu_pct": round((cpu[3] - cpu[0] - cpu[1] - cpu[2]) / elapsed * 100, 1),
        "nice": os.nice(0),
        "bench_loop_lag_p99_ms": percentile(lag.samples, 99),
        "bench_loop_lag_max_ms": percentile(lag.samples, 100),
        "metrics_mean_ms": metric_means_ms(before, after),
        "turn_events": turn_events(before, after),
        "elapsed_s": round(elapsed, 1),
    }
    if scenario.bed:
        line["noise_db_under_speech"] = scenario.noise_db
    if scenario.phantom_seconds:
        line["phantom_seconds"] = scenario.phantom_seconds
        line["phantom_replies"] = sum(o.phantom_replies for o in outcomes)
    if scenario.pause_ms is not None:
        # each turn is said with a pause in the middle: one answer, after the whole of it
        line["pause_ms"] = scenario.pause_ms
        line["turns_answered_early"] = sum(o.early_replies for o in outcomes)
        ends = sum(n for event, n in line["turn_events"].items() if event.startswith("end_of"))
        line["turns_taken_per_utterance"] = round(ends / max(1, len(turns)), 2)
    if scenario.barge_in:
        line["barge_in_ms"] = spread(barge_in)  # caller's first voiced frame -> AI silent
        line["barge_in_timed"] = f"{len(barge_in)}/{len(turns)}"
    for error in errors[:3]:
        log(f"  error: {error}")
    return line


def _cpu(server: Server, scenario: Scenario) -> tuple[float, float, float, float]:
    """CPU seconds so far: the server (and its STT worker), this process, the fake, and
    the whole machine."""
    fake = cpu_seconds(scenario.fake_pid) if scenario.fake_pid else 0.0
    return (
        cpu_seconds(server.proc.pid, children=True),
        cpu_seconds(os.getpid()),
        fake,
        machine_busy_seconds(),
    )


def _punctuality(caller: BenchCaller, until: float, scenario: Scenario) -> Punctuality:
    """From the moment the call's media connected until the turns were over."""
    start = caller.media_started
    if start is None:
        return Punctuality()
    heard = [a for a in caller.heard.arrivals if start <= a.at <= until]
    return Punctuality.of(heard, scenario.buffer_ms)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# -- the sweep -------------------------------------------------------------------------


async def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if shutil.which("espeak-ng") is None:
        log("espeak-ng makes the callers' speech: apt-get install -y espeak-ng")
        return 2
    if args.nice:
        # a shared machine: the measured processes (this one, the server, the fake) first
        os.nice(args.nice)
    counts = [int(n) for n in args.calls.split(",") if n]
    text, voice = UTTERANCES[args.providers]
    wav = espeak_wav(text, voice)
    transcripts: list[tuple[float, str]] = []
    if args.pause_ms is not None:
        wav, transcripts = paused_wav(text, voice, args.pause_ms / 1000)
    elif args.heard is not None:
        transcripts = [(0.0, args.heard)]
    utterance = encode_utterance(wav, args.noise_db)
    silence = silence_packet()
    bed = noise_bed(wav, args.noise_db) if args.noise_db is not None else ()
    conditions: dict[str, Any] = {
        "noise_db": args.noise_db,
        "bed": bed,
        "phantom_seconds": args.phantom_seconds,
        "barge_in": args.barge_in,
        "pause_ms": args.pause_ms,
    }
    detail_path = args.detail or OUT_DIR / f"voice-turns-{args.providers}.jsonl"
    log_path = args.log or OUT_DIR / f"voice-server-{args.providers}.log"
    deadline = time.monotonic() + args.budget
    results: list[dict[str, Any]] = []
    delays = BenchDelays()
    with tempfile.TemporaryDirectory(prefix="mobok-bench-voice-") as tmp:
        scratch = Path(tmp)
        try:
            async with contextlib.AsyncExitStack() as stack:
                llm_url, fake_pid = None, None
                if args.providers == "fake":
                    llm_url, fake_pid = await stack.enter_async_context(
                        fake_process(delays, transcripts)
                    )
                # written in the scratch directory, published when done: runs at the same time
                # (the smoke test in someone's suite) never write into each other's files
                server = await stack.enter_async_context(
                    running_server(
                        args.providers, llm_url, scratch, scratch / "server.log", args.server_env
                    )
                )
                detail = stack.enter_context(
                    await asyncio.to_thread(open, scratch / "turns.jsonl", "w")
                )
                if not args.no_warm_up:
                    # one call first, not reported: imports, the database, the STT worker warm up
                    warm = Scenario(
                        args.providers, 1, 1, args.buffer_ms, utterance, silence, fake_pid,
                        bed=bed, noise_db=args.noise_db,
                    )  # fmt: skip
                    await run_scenario(server, warm, io.StringIO(), None)
                for calls in counts:
                    if time.monotonic() > deadline:
                        log(f"time budget spent: N={calls} and above not run")
                        break
                    if args.wait_quiet:
                        await wait_until_quiet(args.wait_quiet, deadline)
                    scenario = Scenario(
                        args.providers,
                        calls,
                        args.turns,
                        args.buffer_ms,
                        utterance,
                        silence,
                        fake_pid,
                        **conditions,
                    )
                    profile = args.profile if calls == max(counts) else None
                    line = await run_scenario(server, scenario, detail, profile)
                    if args.providers == "fake":
                        line["provider_delays_ms"] = delays.as_dict()
                    emit(line)
                    results.append(line)
                    if not line["ok"] and not args.keep_going:
                        break
        finally:  # also after a failure: the server's log tells why
            for written, target in (
                (scratch / "server.log", log_path),
                (scratch / "turns.jsonl", detail_path),
            ):
                if written.exists():
                    await asyncio.to_thread(_publish, written, target)
    # the largest N below the first that failed: a larger N passing after a failure (a stall
    # that happened to miss it) does not count
    passing = [r["calls"] for r in itertools.takewhile(lambda r: r["ok"], results)]
    emit(
        {
            "scenario": "voice-capacity",
            "providers": args.providers,
            "max_calls_without_underrun": max(passing, default=0),
            "tested": [{"calls": r["calls"], "ok": r["ok"]} for r in results],
            "buffer_ms": args.buffer_ms,
            "cpus": os.cpu_count(),
            "detail": str(detail_path),
        }
    )
    log(f"per-turn breakdown: {detail_path}; server log: {log_path}")
    # a failure is a call that did not connect or a reply that never came; underruns are
    # figures (the capacity line), not failures
    return 0 if results and results[0]["errors"] == 0 else 1


def _publish(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    shutil.copyfile(source, partial)
    os.replace(partial, target)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--providers", choices=("fake", "local"), default="fake")
    parser.add_argument("--calls", default="1,5,10,20,30,40", help="N to sweep, increasing")
    parser.add_argument("--turns", type=int, default=3, help="utterances per call")
    parser.add_argument("--buffer-ms", type=float, default=60.0, help="the caller's playout buffer")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds for the sweep")
    parser.add_argument("--keep-going", action="store_true", help="sweep on past an underrun")
    parser.add_argument("--detail", type=Path, help="per-turn JSON lines (default .bench/)")
    parser.add_argument("--log", type=Path, help="the server's log (default .bench/)")
    parser.add_argument("--profile", type=Path, help="py-spy the server at the largest N")
    parser.add_argument("--no-warm-up", action="store_true", help="skip the unreported call")
    parser.add_argument(
        "--noise-db", type=float, help="steady pink noise this many dB under the speech, always"
    )
    parser.add_argument(
        "--phantom-seconds",
        type=float,
        default=0.0,
        help="noise (or silence) alone before the first turn; replies to it are counted",
    )
    parser.add_argument(
        "--barge-in", action="store_true", help="each turn, speak again over the AI's reply"
    )
    parser.add_argument(
        "--heard",
        help="what the fake STT hears in every utterance (default: a finished Korean "
        "sentence; e.g. a bare noun phrase, which leaves the end of turn to Smart Turn)",
    )
    parser.add_argument(
        "--pause-ms",
        type=float,
        help="say each turn with a pause this long in its middle (fake providers: the STT "
        "hears the words of each half)",
    )
    parser.add_argument(
        "--server-env", action="append", default=[], help="NAME=VALUE for the server process"
    )
    parser.add_argument(
        "--nice", type=int, default=0, help="e.g. -10 (root): priority over other load"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="PCT",
        help="before each N, wait for the rest of the machine to use < PCT%% of a core",
    )
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    """The callers' own loop: the cheaper it is, the less the load generator takes from the
    server on the same two cores."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main(argv))
    return uvloop.run(main(argv))


if __name__ == "__main__":
    sys.exit(run())
