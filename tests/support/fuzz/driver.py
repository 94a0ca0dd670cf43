"""Hypothesis against a live server: payloads are drawn in a worker thread and sent from the
test's event loop, where the server (and the test's clients) run.

Hypothesis runs a sync test function; the server lives on pytest-asyncio's loop. So the
`@given` function runs in a thread (`asyncio.to_thread`) and hands each payload's check to
the loop with `run_coroutine_threadsafe`, waiting for its verdict: one payload at a time, in
order; the first payload whose check fails is reported as drawn, with the campaign's seed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.strategies import SearchStrategy

T = TypeVar("T")

STEP_TIMEOUT_SECONDS = 30.0  # one payload's round trip; a hang fails the run instead of CI
_SEED = os.environ.get("FUZZ_SEED")  # replay a failed run: FUZZ_SEED=<the seed in its note>


class Drawn(Generic[T]):
    """A drawn payload whose repr stays short: hypothesis prints the failing one, and a
    megabyte of it would hide the failure behind a warning (an error in this suite)."""

    def __init__(self, value: T) -> None:
        self.value = value

    def __repr__(self) -> str:
        text = repr(self.value)
        return text if len(text) <= 3000 else f"{text[:3000]}... ({len(text)} characters)"


class Fuzzer:
    """Runs hypothesis campaigns against the live server and counts the payloads sent."""

    def __init__(self, tried: Counter[str]) -> None:
        self.loop = asyncio.get_running_loop()
        self.tried = tried

    async def run(
        self,
        name: str,
        strategy: SearchStrategy[T],
        check: Callable[[T], Awaitable[None]],
        *,
        examples: int,
        alive: Callable[[], Awaitable[None]] | None = None,
        alive_every: int = 250,
    ) -> None:
        """Draw `examples` payloads from `strategy`; `check` sends one and asserts its answer.
        Every `alive_every` payloads, and once at the end, `alive` proves a valid request
        is still answered."""

        def one(drawn: Drawn[T]) -> None:
            self.tried[name] += 1
            self._on_loop(check(drawn.value))
            if alive is not None and self.tried[name] % alive_every == 0:
                self._on_loop(alive())

        campaign = settings(
            max_examples=examples,
            deadline=None,
            database=None,  # no .hypothesis/ directory in the checkout
            suppress_health_check=list(HealthCheck),
            # no shrinking: the server keeps state between payloads, so a replayed payload
            # may be answered differently; the first failing payload is reported as drawn
            phases=(Phase.explicit, Phase.generate),
            print_blob=False,  # its blob replays one example, not the server's state: the seed
        )(given(strategy.map(Drawn))(one))
        campaign_seed = int(_SEED) if _SEED is not None else random.randrange(2**32)
        try:
            await asyncio.to_thread(seed(campaign_seed)(campaign))
        except BaseException as exc:
            exc.add_note(f"fuzz campaign {name!r}: FUZZ_SEED={campaign_seed} draws it again")
            raise
        if alive is not None:
            await alive()

    def _on_loop(self, work: Awaitable[None]) -> None:
        step = asyncio.wait_for(work, STEP_TIMEOUT_SECONDS)
        asyncio.run_coroutine_threadsafe(step, self.loop).result()


@dataclass
class Crashes:
    """Unhandled exceptions seen while fuzzing: log records carrying a traceback or at ERROR
    and above (aiohttp's 'Error handling request', engineio's 'handler error', our own
    'unexpected failure'), and whatever reached the event loop's exception handler ('Task
    exception was never retrieved', errors in callbacks)."""

    records: list[logging.LogRecord] = field(default_factory=list)
    loop_errors: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> list[str]:
        out = [
            f"{r.name} {r.levelname}: {r.getMessage()[:200]}"
            + (f" ({r.exc_info[1]!r:.200})" if r.exc_info else "")
            for r in self.records
        ]
        out += [f"loop: {c.get('message')} {c.get('exception')!r:.200}" for c in self.loop_errors]
        return out


class _CrashHandler(logging.Handler):
    def __init__(self, crashes: Crashes) -> None:
        super().__init__(logging.NOTSET)
        self.crashes = crashes

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.crashes.records.append(record)


@contextmanager
def watching_for_crashes(loop: asyncio.AbstractEventLoop) -> Iterator[Crashes]:
    crashes = Crashes()
    handler = _CrashHandler(crashes)
    root = logging.getLogger()
    root.addHandler(handler)
    previous = loop.get_exception_handler()

    def on_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        crashes.loop_errors.append(context)

    loop.set_exception_handler(on_loop_error)
    try:
        yield crashes
        gc.collect()  # 'Task exception was never retrieved' is reported when the task dies
    finally:
        loop.set_exception_handler(previous)
        root.removeHandler(handler)
