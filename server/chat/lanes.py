"""Per-key FIFO lanes: work for one key runs one at a time, in the order it was queued."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager


class Lanes:
    def __init__(self) -> None:
        self._tails: dict[Hashable, asyncio.Future[None]] = {}

    @asynccontextmanager
    async def lane(self, key: Hashable) -> AsyncIterator[None]:
        """Wait for everything queued on `key` before this call, then run.

        The place in the queue is taken synchronously, at the call, so callers started in
        order run in order even if the first one has not reached its first await yet.
        """
        previous = self._tails.get(key)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tails[key] = done
        try:
            if previous is not None:
                await asyncio.shield(previous)
            yield
        finally:

            def release(_: object = None) -> None:
                done.set_result(None)
                if self._tails.get(key) is done:
                    del self._tails[key]

            if previous is not None and not previous.done():
                # cancelled while waiting: whoever queued after us still waits for `previous`
                previous.add_done_callback(release)
            else:
                release()

    def busy(self, key: Hashable) -> bool:
        return key in self._tails
