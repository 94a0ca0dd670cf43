"""Timestamps that never repeat or go back within a process.

History is ordered by `created_at`; two messages stored in the same microsecond must still
come back in the order they were stored (CONTRACT §1.2).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_ONE_TICK = timedelta(microseconds=1)
_last = datetime.min.replace(tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC)


def next_timestamp() -> datetime:
    global _last
    current = datetime.now(UTC)
    if current <= _last:
        current = _last + _ONE_TICK
    _last = current
    return current


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def to_iso(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and `Z`: `2024-12-14T10:30:00.000Z`."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
