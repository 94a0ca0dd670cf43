"""The failures a client is told about; their texts are in `server.texts`."""

from __future__ import annotations

from server.texts import TEMPORARY_FAILURE, invalid_field


class ChatError(Exception):
    """A failure the client is told about (`error { message }`, `ai_stream_error { error }`...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidField(ChatError):
    def __init__(self, field: str) -> None:
        super().__init__(invalid_field(field))
        self.field = field


def describe_failure(exc: BaseException) -> str:
    """What a client is told about any failure: a ChatError's own text; for anything else the
    temporary-failure text, with the cause logged (a warning for a database outage, the
    traceback for a bug)."""
    import logging

    from server.db import DB_UNAVAILABLE_ERRORS

    if isinstance(exc, ChatError):
        return exc.message
    log = logging.getLogger("server.failures")
    if isinstance(exc, DB_UNAVAILABLE_ERRORS):
        log.warning("database unavailable: %s", exc)
    else:
        log.error("unexpected failure", exc_info=exc)
    return TEMPORARY_FAILURE
