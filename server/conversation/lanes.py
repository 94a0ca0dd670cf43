"""Per-key FIFO lanes: work for one key runs one at a time, in the order it was queued."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable


class Lanes:
    def __init__(self) -> None:
        # keys whose work is running, with the callers queued behind it, in order
        self._waiting: dict[Hashable, list[asyncio.Future[None]]] = {}

    def lane(self, key: Hashable) -> _Lane:
        """`async with lanes.lane(key)`: wait for everything queued on `key` before, then run.

        The place in the queue is taken when the block is entered, before anything is
        awaited, so callers started in order run in order even if the first one has not
        reached its first await yet.
        """
        return _Lane(self, key)

    def busy(self, key: Hashable) -> bool:
        return key in self._waiting

    def _hand_on(self, key: Hashable) -> None:
        queue = self._waiting[key]
        while queue:
            turn = queue.pop(0)
            if not turn.done():  # a caller cancelled while queued is skipped
                turn.set_result(None)
                return
        del self._waiting[key]


class _Lane:
    """One pass through a lane. No future at all when nobody else is in it (the common
    case: a chat turn and a socket's event go through one each)."""

    __slots__ = ("_key", "_lanes")

    def __init__(self, lanes: Lanes, key: Hashable) -> None:
        self._lanes = lanes
        self._key = key

    async def __aenter__(self) -> None:
        queue = self._lanes._waiting.get(self._key)
        if queue is None:
            self._lanes._waiting[self._key] = []
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(turn)
        try:
            await turn
        except BaseException:
            if turn in queue:
                queue.remove(turn)  # cancelled while waiting: the others keep their places
            else:
                self._lanes._hand_on(self._key)  # cancelled as its turn came: pass it on
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._lanes._hand_on(self._key)
