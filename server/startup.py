"""Start-up that explains itself: settings read or refused in one line, and `--help`.

Every reason not to start is one line on stderr and exit code 2 (`python -m server`): a bad
setting (which variable, what is wrong, never a secret's value), a database that cannot be
reached (where, and the driver's reason), a port that cannot be listened on.
"""

from __future__ import annotations

import errno
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticUndefined

from server.config import Settings

EXIT_BAD_START = 2
# values never repeated back: a mistyped secret is still mostly the secret
_SECRET_WORDS = ("secret", "password", "key", "token", "database_url")


class StartupError(Exception):
    """A reason not to start, said in one line."""


def load_settings(**overrides: Any) -> Settings:
    """The settings of the environment (and `.env`), or a `StartupError` naming the variable."""
    try:
        settings = Settings(**overrides)
        settings.transports  # noqa: B018 (checked now, not at the first client)
    except ValidationError as exc:
        raise StartupError(_explain(exc)) from None
    except ValueError as exc:
        raise StartupError(f"bad setting: {exc}") from None
    return settings


def _explain(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if not field:  # a rule across settings (AUTH_SECRET vs JWT_SECRET_KEY, DATABASE_URL)
            problems.append(message)
            continue
        shown = "" if _is_secret(field) else f" (got {str(error.get('input'))[:60]!r})"
        problems.append(f"{field.upper()}: {message}{shown}")
    return "bad setting: " + "; ".join(problems)


def _is_secret(field: str) -> bool:
    return any(word in field for word in _SECRET_WORDS)


def listen_failure(exc: OSError, host: str, port: int) -> str | None:
    """The one line for a socket that cannot be opened, or None for another OSError."""
    reasons = {
        errno.EADDRINUSE: "the port is already in use (another server running?)",
        errno.EACCES: "permission denied (ports below 1024 need privileges)",
        errno.EADDRNOTAVAIL: "the address is not one of this machine's (HOST)",
    }
    reason = reasons.get(exc.errno or 0)
    if reason is None:
        return None
    return f"cannot listen on {host}:{port}: {reason}"


def settings_help() -> str:
    """`python -m server --help`: every setting with its default, from the Settings model."""
    lines = [
        "usage: python -m server [--help]",
        "",
        "Serves Socket.IO (/chat, /signaling), the WebSocket endpoints, REST (/api/docs) and",
        "the pages on HOST:PORT. Settings come from the environment or a .env file:",
        "",
    ]
    for name, field in Settings.model_fields.items():
        default = field.default
        if default is PydanticUndefined or default is None or default == "":
            shown = "-"
        else:
            shown = str(default)
        if name == "database_url":
            shown = "sqlite://data/mobok.sqlite3 (mysql:// from DB_HOST...; postgres://)"
        lines.append(f"  {name.upper():<32} {shown}")
    lines += [
        "",
        "JWT_SECRET_KEY is another name of AUTH_SECRET. Exit code 2: a setting, the database",
        "or the port stopped the start (one line on stderr says which).",
    ]
    return "\n".join(lines)
