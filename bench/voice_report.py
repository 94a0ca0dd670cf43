"""Figures of the voice bench: the server's per-turn log lines, its `/metrics`, the callers'
own measurements, folded into one summary per scenario."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import percentile

# what `server.voice.latency` logs per turn, in the order the summary shows them
STAGES = (
    "end_of_utterance",
    "end_of_turn_decision",
    "stt",
    "llm_first_token",
    "llm_wait",
    "tts_first_byte",
    "tts",
    "first_audio",
    "reply_done",
    "overhead",
)
_EXTRA = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def spread(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "max": percentile(values, 100),
    }


@dataclass
class ServerLog:
    """The lines of the server's log this bench reads, by call id."""

    turns: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    pacing: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path, offset: int = 0) -> ServerLog:
        parsed = cls()
        with open(path, "rb") as log:
            log.seek(offset)
            for raw in log:
                line = raw.decode("utf-8", "replace")
                if "voice turn latency" in line:
                    extra = _extras(line)
                    parsed.turns[str(extra.get("callId"))].append(extra)
                elif "ai peer closed" in line:
                    extra = _extras(line)
                    parsed.pacing[str(extra.get("callId"))] = extra
        return parsed


def _extras(line: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in _EXTRA.findall(line.split(": ", 1)[-1]):
        try:
            out[key] = json.loads(value)
        except ValueError:
            continue
    return out


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format -> {'name{labels}': value} (comments dropped)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            values[name] = float(value)
        except ValueError:
            continue
    return values


def metric_means_ms(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Mean of each voice stage and provider stage over the scenario (ms), from the
    histograms' _sum and _count deltas."""
    means: dict[str, float] = {}
    for key, total in after.items():
        name, brace, labels = key.partition("{")
        if name not in ("mobok_voice_stage_seconds_sum", "mobok_provider_seconds_sum"):
            continue
        count_key = name.removesuffix("_sum") + "_count" + brace + labels
        count = after.get(count_key, 0) - before.get(count_key, 0)
        if count <= 0:
            continue
        short = name.removeprefix("mobok_").removesuffix("_seconds_sum") + brace + labels
        means[short] = round((total - before.get(key, 0)) / count * 1000, 1)
    return means


@dataclass
class TurnResult:
    call: int
    turn: int
    client_first_audio_ms: float | None  # last voiced frame sent -> first AI sound arrived
    server: dict[str, Any]  # the server's breakdown of the same turn (ms), {} if missing

    def line(self, scenario: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {**scenario, "call": self.call, "turn": self.turn}
        out.update({stage: self.server.get(stage) for stage in STAGES})
        out["client_first_audio"] = self.client_first_audio_ms
        first, done = self.server.get("first_audio"), self.server.get("reply_done")
        out["first_audio_before_reply_done"] = (
            None if first is None or done is None else first < done
        )
        return out


def summarize(turns: Iterable[TurnResult], pacing: Iterable[dict[str, Any]]) -> dict[str, Any]:
    turns = list(turns)
    out: dict[str, Any] = {}
    for stage in STAGES:
        values = [t.server[stage] for t in turns if t.server.get(stage) is not None]
        out[f"{stage}_ms"] = spread(values)
    client = [t.client_first_audio_ms for t in turns if t.client_first_audio_ms is not None]
    out["client_first_audio_ms"] = spread(client)
    pairs = [
        (t.server["first_audio"], t.server["reply_done"])
        for t in turns
        if t.server.get("first_audio") is not None and t.server.get("reply_done") is not None
    ]
    out["first_audio_before_reply_done"] = f"{sum(f < d for f, d in pairs)}/{len(pairs)}"
    overheads = [t.server["overhead"] for t in turns if t.server.get("overhead") is not None]
    out["overhead_within_30ms"] = f"{sum(o <= 30 for o in overheads)}/{len(overheads)}"
    pacing = list(pacing)  # whole calls, hanging up included
    out["server_frames"] = sum(int(p.get("frames", 0)) for p in pacing)
    out["server_max_lag_ms"] = max((float(p.get("maxLagMs", 0)) for p in pacing), default=None)
    return out


TURN_EVENTS = (
    "end_of_turn_model",
    "end_of_turn_transcript",
    "end_of_turn_deadline",
    "end_of_turn_silence",
    "end_of_turn_cap",
    "turn_continued",
    "model_busy",
    "interruption",
    "echo_suppressed",
    "false_start",
)


def turn_events(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """`mobok_voice_turn_events_total` by event between two scrapes."""
    out: dict[str, int] = {}
    for event in TURN_EVENTS:
        key = f'mobok_voice_turn_events_total{{event="{event}"}}'
        out[event] = round(after.get(key, 0) - before.get(key, 0))
    return out


def late_frames(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """`mobok_voice_late_frames_total` by kind (late, gap, resync) between two scrapes."""
    out: dict[str, int] = {}
    for kind in ("late", "gap", "resync"):
        key = f'mobok_voice_late_frames_total{{kind="{kind}"}}'
        out[kind] = round(after.get(key, 0) - before.get(key, 0))
    return out
