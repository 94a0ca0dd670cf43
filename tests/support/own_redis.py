"""A Redis server of the test's own, on its own port (never the machine's), that the test
may stop and start again: `redis-server --port N --save ''`."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from redis.asyncio import Redis

from tests.conftest import require
from tests.support.processes import free_port


class OwnRedis:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        client = Redis.from_url(self.url)
        try:
            for _ in range(100):
                try:
                    if await client.ping():
                        return
                except OSError:
                    pass
                except Exception:  # redis' own ConnectionError while it starts
                    pass
                await asyncio.sleep(0.05)
        finally:
            await client.aclose()
        raise AssertionError("redis-server did not start")

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@asynccontextmanager
async def own_redis(workdir: Path) -> AsyncIterator[OwnRedis]:
    require(shutil.which("redis-server") is not None, "redis-server is not installed")
    server = OwnRedis(workdir)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
