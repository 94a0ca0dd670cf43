"""Column types the contract fixes where Tortoise's defaults differ on MySQL."""

from __future__ import annotations

from tortoise import fields


class PlainTextField(fields.TextField):  # type: ignore[type-arg]
    """`text`, not Tortoise's MySQL default `longtext` (CONTRACT §1.2)."""

    class _db_mysql:
        SQL_TYPE = "TEXT"
