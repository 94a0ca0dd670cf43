"""Alerting an operator: a POST to SAFETY_WEBHOOK_URL for every message at risk.

The reply never waits for it: `notify` only queues. A few workers post each alert within
a second, retry a failing receiver with backoff, and log (never raise) when it stays down.
The body is `{protocol, sessionId, category, level, timestamp}`: never the message text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

ATTEMPTS = 4
BACKOFF_SECONDS = (0.25, 0.5, 1.0)  # before the 2nd, 3rd and 4th attempt
REQUEST_TIMEOUT_SECONDS = 3.0
WORKERS = 4
QUEUE_SIZE = 1000
DRAIN_SECONDS = 2.0  # at shutdown, time left to alerts still queued


def utc_timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SafetyNotifier:
    """Posts alerts to one URL from a bounded queue; run it with `start()` / `aclose()`."""

    def __init__(self, url: str, *, backoff: tuple[float, ...] = BACKOFF_SECONDS) -> None:
        self.url = url
        self._backoff = backoff
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._session: aiohttp.ClientSession | None = None
        self._workers: list[asyncio.Task[None]] = []

    def notify(self, alert: dict[str, Any]) -> None:
        """Queue an alert; returns at once. A full queue drops it, with a log line."""
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            log.error("safety webhook queue full: alert dropped", extra=_fields(alert))

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._workers = [
            asyncio.create_task(self._work(), name=f"safety-webhook-{n}") for n in range(WORKERS)
        ]

    async def aclose(self) -> None:
        """Give queued alerts a moment to go out, then stop the workers."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_SECONDS):
                await self._queue.join()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _work(self) -> None:
        while True:
            alert = await self._queue.get()
            try:
                await self._deliver(alert)
            finally:
                self._queue.task_done()

    async def _deliver(self, alert: dict[str, Any]) -> None:
        assert self._session is not None
        problem = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(self._backoff[min(attempt, len(self._backoff)) - 1])
            try:
                async with self._session.post(self.url, json=alert) as response:
                    if response.status < 300:
                        return
                    problem = f"HTTP {response.status}"
                    if 400 <= response.status < 500 and response.status not in (408, 429):
                        break  # the receiver refuses this alert: asking again will not help
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}"[:200]
        log.error(
            "safety webhook failed after %d attempt(s): %s",
            attempt + 1,
            problem,
            extra=_fields(alert),
        )


def _fields(alert: dict[str, Any]) -> dict[str, Any]:
    return {
        "protocol": alert.get("protocol"),
        "session": alert.get("sessionId"),
        "category": alert.get("category"),
    }
