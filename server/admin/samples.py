"""The console's last hour: `/metrics`' figures sampled every ADMIN_SAMPLE_SECONDS (15).

Counters and histograms are cumulative; each sample keeps what happened since the one
before it (turns and errors per minute, turn latency and voice first-audio latency, p95 from
the histogram buckets), and the gauges as they are (connections per protocol, active calls).
This process's figures: behind a load balancer each instance shows its own.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from server.metrics import REGISTRY

HOUR_SECONDS = 3600.0


@dataclass
class Totals:
    """Cumulative figures read from the registry at one moment."""

    at: float
    turns: float = 0.0
    turn_seconds: float = 0.0
    errors: float = 0.0
    turn_buckets: dict[float, float] = field(default_factory=dict)
    first_audio: float = 0.0
    first_audio_buckets: dict[float, float] = field(default_factory=dict)
    connections: dict[str, float] = field(default_factory=dict)
    active_calls: float = 0.0


def read_totals(registry: CollectorRegistry = REGISTRY) -> Totals:
    totals = Totals(at=time.time())
    for family in registry.collect():
        for s in family.samples:
            labels = s.labels
            if s.name == "mobok_turn_seconds_count":
                totals.turns += s.value
            elif s.name == "mobok_turn_seconds_sum":
                totals.turn_seconds += s.value
            elif s.name == "mobok_turn_seconds_bucket":
                bound = float(labels["le"])
                totals.turn_buckets[bound] = totals.turn_buckets.get(bound, 0.0) + s.value
            elif s.name == "mobok_turn_errors_total":
                totals.errors += s.value
            elif s.name == "mobok_voice_stage_seconds_bucket" and labels["stage"] == "first_audio":
                totals.first_audio_buckets[float(labels["le"])] = s.value
            elif s.name == "mobok_voice_stage_seconds_count" and labels["stage"] == "first_audio":
                totals.first_audio = s.value
            elif s.name == "mobok_connections":
                totals.connections[labels["protocol"]] = s.value
            elif s.name == "mobok_active_calls":
                totals.active_calls = s.value
    return totals


def _p95_ms(before: dict[float, float], after: dict[float, float]) -> float | None:
    """The 95th percentile of what was observed between two readings (a bucket's bound)."""
    delta = {b: after.get(b, 0.0) - before.get(b, 0.0) for b in after}
    total = delta.get(math.inf, 0.0)
    if total <= 0:
        return None
    for bound in sorted(delta):
        if delta[bound] >= 0.95 * total:
            return None if bound == math.inf else round(bound * 1000, 1)
    return None


def point(before: Totals, after: Totals) -> dict[str, Any]:
    minutes = max(after.at - before.at, 1e-9) / 60
    turns = after.turns - before.turns
    return {
        "t": round(after.at, 3),
        "connections": dict(after.connections),
        "activeCalls": after.active_calls,
        "turnsPerMinute": round(turns / minutes, 2),
        "errorsPerMinute": round((after.errors - before.errors) / minutes, 2),
        "turnMeanMs": (
            round((after.turn_seconds - before.turn_seconds) / turns * 1000, 1) if turns else None
        ),
        "turnP95Ms": _p95_ms(before.turn_buckets, after.turn_buckets),
        "firstAudioP95Ms": _p95_ms(before.first_audio_buckets, after.first_audio_buckets),
    }


class MetricsHistory:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.points: deque[dict[str, Any]] = deque(maxlen=max(2, int(HOUR_SECONDS / interval)))
        self._last = read_totals()

    def sample(self) -> dict[str, Any]:
        now = read_totals()
        self.points.append(point(self._last, now))
        self._last = now
        return self.points[-1]

    def current(self) -> dict[str, Any]:
        """The figures since the last sample, as a point (the console's numbers)."""
        return point(self._last, read_totals())

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.sample()


METRICS_HISTORY = web.AppKey("metrics_history", MetricsHistory)


async def metrics_history(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the sampler of the console's charts."""
    from server.keys import SETTINGS

    history = MetricsHistory(app[SETTINGS].admin_sample_seconds)
    app[METRICS_HISTORY] = history
    task = asyncio.create_task(history.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
