"""`python -m server`: serve on $HOST:$PORT."""

from __future__ import annotations

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
    )


if __name__ == "__main__":
    main()
