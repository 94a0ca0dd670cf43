"""Token deltas grouped into fewer, larger frames.

A model streams a token at a time; sending each as its own frame costs a frame header, a
JSON encode and a syscall per token. Deltas are held until `interval` has passed since the
last flush or a sentence ends, then sent together. The frames always add up to the exact
text.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

SENTENCE_ENDS = (".", "!", "?", "。", "\n", "다.", "요.")


class DeltaCoalescer:
    def __init__(self, send: Callable[[str], Awaitable[None]], interval: float = 0.03) -> None:
        self._send = send
        self._interval = interval
        self._buffer: list[str] = []
        self._last_flush = time.monotonic()

    async def add(self, delta: str) -> None:
        if not delta:
            return
        self._buffer.append(delta)
        now = time.monotonic()
        if now - self._last_flush >= self._interval or delta.rstrip(" ").endswith(SENTENCE_ENDS):
            await self.flush()

    async def flush(self) -> None:
        """Send what is held (call once more at the end of the reply)."""
        self._last_flush = time.monotonic()
        if self._buffer:
            text = "".join(self._buffer)
            self._buffer.clear()
            await self._send(text)
