"""`python -m server`: serve on $HOST:$PORT."""

from __future__ import annotations

import asyncio
import gc

from aiohttp import web

from server.app import create_app
from server.config import Settings
from server.logs import configure_logging
from server.transport import TransportHookMissing, UntestedVersion


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    try:
        app = create_app(settings)
    except (UntestedVersion, TransportHookMissing) as exc:  # server/transport/README.md
        raise SystemExit(f"mobok: not starting: {exc}") from None
    app.on_startup.append(_freeze_startup_objects)  # last: after the other startup work
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        access_log=None,
        shutdown_timeout=settings.ai_timeout_seconds + 5,
        # also the time a connection has to send a whole request head: trickled headers
        # (slowloris) are cut off then, as idle keep-alive connections are
        keepalive_timeout=settings.http_keepalive_seconds,
        # many clients connecting at once (a reconnect storm) must not overflow the queue
        backlog=1024,
        loop=_event_loop(),
    )


async def _freeze_startup_objects(app: web.Application) -> None:
    """Everything made while starting (modules, models, the catalogue) lives as long as the
    process: kept out of the garbage collector's full passes, which otherwise walk it all
    again and again under load (the longest pauses of a voice call, `make bench-voice`)."""
    gc.collect()
    gc.freeze()


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (not on Windows): a cheaper loop for every socket."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


if __name__ == "__main__":
    main()
