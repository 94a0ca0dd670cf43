"""Prometheus metrics, served at `/metrics` (text exposition format).

One registry per process; every figure the benchmarks report has a metric here, so an
operator sees in production what `make bench` measures on a desk.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

REGISTRY = CollectorRegistry(auto_describe=True)

# seconds; turns of a text chat are tens of ms to tens of seconds
_TURN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

TURN_SECONDS = Histogram(
    "mobok_turn_seconds",
    "User message stored to the whole AI reply sent, per protocol",
    ["protocol"],
    buckets=_TURN_BUCKETS,
    registry=REGISTRY,
)
TURN_ERRORS = Counter(
    "mobok_turn_errors_total",
    "AI turns that ended in an error event, per protocol",
    ["protocol"],
    registry=REGISTRY,
)
CONNECTIONS = Gauge(
    "mobok_connections",
    "Open client connections, per protocol (Socket.IO namespace or WebSocket endpoint)",
    ["protocol"],
    registry=REGISTRY,
)
ACTIVE_CALLS = Gauge(
    "mobok_active_calls",
    "Voice calls whose AI peer is running",
    registry=REGISTRY,
)
PROVIDER_SECONDS = Histogram(
    "mobok_provider_seconds",
    "Time spent waiting on an AI provider: stage is llm_first_token, llm_total, stt or "
    "tts_first_byte",
    ["provider", "stage"],
    buckets=_STAGE_BUCKETS,
    registry=REGISTRY,
)
VOICE_STAGE_SECONDS = Histogram(
    "mobok_voice_stage_seconds",
    "Per voice turn: end_of_utterance (last speech -> turn judged over), "
    "end_of_turn_decision (the end-of-turn model's time), first_audio (end of speech to "
    "first AI audio frame), overhead (first_audio minus provider time)",
    ["stage"],
    buckets=_STAGE_BUCKETS,
    registry=REGISTRY,
)
VOICE_TURN_EVENTS = Counter(
    "mobok_voice_turn_events_total",
    "Turn taking on calls: end_of_turn_model (the end-of-turn model ended a turn after a "
    "pause), end_of_turn_transcript (the words of the utterance closed a sentence), "
    "end_of_turn_deadline (no verdict by TURN_DECISION_DEADLINE_MS: the pause did), "
    "end_of_turn_silence (the longest silence did), end_of_turn_cap (the utterance "
    "reached MAX_UTTERANCE_SECONDS), turn_continued (a pause judged unfinished, by the model "
    "or the words), model_busy (a pause the end-of-turn model was too busy to judge), "
    "interruption (the caller spoke over the AI and it stopped), "
    "false_start (speech too short, or without words, to answer), echo_suppressed (a 32 ms "
    "chunk the VAD called speech, judged the AI's own voice coming back: ECHO_GUARD)",
    ["event"],
    registry=REGISTRY,
)
VOICE_LATE_FRAMES = Counter(
    "mobok_voice_late_frames_total",
    "The AI's outgoing 20 ms audio frames handed to the sender behind their slot: late "
    "(> 20 ms), gap (> 60 ms: a caller holding 60 ms of audio hears a gap), resync (> 200 ms: "
    "the track's clock restarted)",
    ["kind"],
    registry=REGISTRY,
)
FANOUT_RECEIVED = Counter(
    "mobok_fanout_received_total",
    "Socket.IO messages this instance took off Redis (emits of other instances for rooms it "
    "has sockets in, plus cluster-wide requests)",
    registry=REGISTRY,
)


class TurnClock:
    """One AI turn of a protocol, from the user's message stored: `done()` when the whole
    reply has been sent observes its duration, `failed()` counts it as an error."""

    __slots__ = ("protocol", "started")

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.started = time.monotonic()

    def done(self) -> None:
        TURN_SECONDS.labels(self.protocol).observe(time.monotonic() - self.started)

    def failed(self) -> None:
        TURN_ERRORS.labels(self.protocol).inc()


@contextmanager
def connection_counted(protocol: str) -> Iterator[None]:
    """A plain WebSocket connection, counted in CONNECTIONS while it is open."""
    gauge = CONNECTIONS.labels(protocol)
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


async def metrics_handler(request: web.Request) -> web.Response:
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_metrics_route(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics_handler)
