"""`python -m server`: serve on $HOST:$PORT (`--help` lists the settings)."""

from __future__ import annotations

import asyncio
import gc
import sys

from aiohttp import web

from server.app import create_app
from server.db import DatabaseUnreachable
from server.logs import configure_logging
from server.startup import (
    EXIT_BAD_START,
    StartupError,
    listen_failure,
    load_settings,
    settings_help,
)
from server.transport import TransportHookMissing, UntestedVersion


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print(settings_help())
        return 0
    if args:
        print(f"mobok: unknown argument {args[0]!r} (see --help)", file=sys.stderr)
        return EXIT_BAD_START
    try:
        settings = load_settings()
    except StartupError as exc:
        print(f"mobok: {exc}", file=sys.stderr)
        return EXIT_BAD_START
    configure_logging(settings.log_level)
    try:
        app = create_app(settings)
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
    except (UntestedVersion, TransportHookMissing) as exc:  # server/transport/README.md
        print(f"mobok: not starting: {exc}", file=sys.stderr)
        return EXIT_BAD_START
    except (StartupError, DatabaseUnreachable) as exc:
        print(f"mobok: {exc}", file=sys.stderr)
        return EXIT_BAD_START
    except OSError as exc:
        line = listen_failure(exc, settings.host, settings.port)
        if line is None:
            raise
        print(f"mobok: {line}", file=sys.stderr)
        return EXIT_BAD_START
    return 0


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
    sys.exit(main())
