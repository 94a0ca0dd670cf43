"""One welfare service of the catalogue."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WelfareService:
    id: str
    name: str
    department: str
    contact: str
    summary: str
    target: str
    url: str | None = None
    region: str | None = None  # None: a national service
