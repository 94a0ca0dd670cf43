"""Structured logs: one line per record, `key=value` extras, user text cut to 50 characters."""

from __future__ import annotations

import logging
import sys

import orjson
from aiohttp.http_exceptions import HttpProcessingError

PREVIEW_CHARS = 50
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def preview(text: str) -> str:
    """At most the first 50 characters of a user's message: all a log may hold of it."""
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if not extras:
            return base
        fields = " ".join(f"{k}={orjson.dumps(v, default=str).decode()}" for k, v in extras.items())
        head, sep, tail = base.partition("\n")
        return f"{head} {fields}{sep}{tail}"


class ClientHttpMistakes(logging.Filter):
    """aiohttp logs a request it cannot parse (a header past its limits, a URL too long, not
    HTTP at all) as "Error handling request" at ERROR with a traceback, and answers 400 itself.
    That is the client's mistake, not a bug of ours: one INFO line, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.levelno, record.levelname = logging.INFO, "INFO"
            # aiohttp's "Error handling request from %s" reads as a crash: said as what it is
            record.msg = f"unparsable request from %s answered 400: {type(exc).__name__}"
            record.exc_info = record.exc_text = None
        return True


def quiet_client_http_mistakes() -> None:
    """Install `ClientHttpMistakes` on aiohttp's server log (once)."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ClientHttpMistakes) for f in server_log.filters):
        server_log.addFilter(ClientHttpMistakes())


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # the libraries log every packet at INFO
    for noisy in ("engineio.server", "socketio.server", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # SQL parameters hold whole user messages: never below INFO
    for sql in ("tortoise", "aiosqlite", "aiomysql", "asyncpg"):
        logging.getLogger(sql).setLevel(max(root.level, logging.INFO))
