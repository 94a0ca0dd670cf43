"""Structured logs: one line per record, `key=value` extras, user text cut to 50 characters."""

from __future__ import annotations

import logging
import sys

import orjson

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
