"""Query and path parameters of the REST routes, checked as the OpenAPI document declares."""

from __future__ import annotations

import re
from collections.abc import Mapping

from aiohttp import web

# printable text without control characters (ids, user ids, cursors)
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
_ID = re.compile(r"[^\x00-\x1f\x7f]+")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class BadParameter(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _is_id(value: str, max_length: int) -> bool:
    return len(value) <= max_length and _ID.fullmatch(value) is not None


def optional_id(query: Mapping[str, str], name: str, max_length: int = 255) -> str | None:
    value = query.get(name)
    if value is None:
        return None
    if not _is_id(value, max_length):
        raise BadParameter(name)
    return value


def path_id(request: web.Request, name: str, max_length: int = 255) -> str:
    value = request.match_info[name]
    if not _is_id(value, max_length):
        raise BadParameter(name)
    return value


def optional_bool(query: Mapping[str, str], name: str) -> bool | None:
    value = query.get(name)
    if value is None:
        return None
    if value not in ("true", "false"):
        raise BadParameter(name)
    return value == "true"


def bounded_limit(query: Mapping[str, str], default: int = DEFAULT_LIMIT) -> int:
    value = query.get("limit")
    if value is None:
        return default
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise BadParameter("limit")
    return int(value)
