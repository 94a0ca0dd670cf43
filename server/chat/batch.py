"""Group commit: statements of one kind that wait for a database connection go as one.

Under load every connection of the pool is busy and statements queue; rather than send
them one by one, each `Batcher` sends all that queued up while it waited as one statement
(a multi-row `INSERT`, a `COUNT ... GROUP BY`). Each caller still gets its own result only
once that statement is done, so "stored before acknowledged" holds. With the database idle,
a batch is the one statement that asked, sent at once.

Every batcher of a database shares one `asyncio.Semaphore` of the pool's size, first come,
first served: aiomysql's pool is not (a task woken for a freed connection goes back to the
end of the line if a newcomer took it first, and under load some turns waited seconds).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_BATCH = 100  # rows of one statement

_gates: weakref.WeakKeyDictionary[object, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def gate_for(conn: object) -> asyncio.Semaphore:
    """The first come, first served queue in front of a database client: as many places as
    its pool has connections (SQLite: one)."""
    gate = _gates.get(conn)
    if gate is None:
        gate = _gates[conn] = asyncio.Semaphore(int(getattr(conn, "pool_maxsize", 1) or 1))
    return gate


class Batcher(Generic[T, R]):
    def __init__(
        self,
        run: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        gate: asyncio.Semaphore,
        max_batch: int = MAX_BATCH,
    ) -> None:
        """`run(items)` does the whole batch and returns one result per item, in order."""
        self._run = run
        self._gate = gate
        self._max = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._queued = 0  # flushes waiting for the gate
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        if not self._pending and not self._gate.locked():
            # a connection is free and nobody waits: this item alone, at once, no task
            async with self._gate:
                return (await self._run([item]))[0]
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._queued * self._max < len(self._pending):
            self._queued += 1
            # a task, so that a caller that gives up does not take the others' batch along
            task = asyncio.create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _flush(self) -> None:
        async with self._gate:
            self._queued -= 1
            batch, self._pending = self._pending[: self._max], self._pending[self._max :]
            batch = [(item, future) for item, future in batch if not future.cancelled()]
            if not batch:
                return
            try:
                await self._settle(batch)
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise

    async def _settle(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)
                return
            # one bad item must not fail the others: each on its own
            for one in batch:
                await self._settle([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
