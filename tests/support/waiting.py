"""Waiting in tests for what the server does in its own time."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable


async def until(
    condition: Callable[[], object], timeout: float = 10, what: str = "the condition"
) -> None:
    """Poll `condition()` (or the awaitable it returns) until it holds, for state that
    changes without an event to wait on (a row, a peer's state, a metric); fail after
    `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
