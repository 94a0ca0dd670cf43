"""`python -m server`: serve on $HOST:$PORT."""

from __future__ import annotations

import asyncio

from aiohttp import web

from server.app import create_app
from server.config import Settings
from server.logs import configure_logging


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=None,
        shutdown_timeout=settings.ai_timeout_seconds + 5,
        # many clients connecting at once (a reconnect storm) must not overflow the queue
        backlog=1024,
        loop=_event_loop(),
    )


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (not on Windows): a cheaper loop for every socket."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


if __name__ == "__main__":
    main()
